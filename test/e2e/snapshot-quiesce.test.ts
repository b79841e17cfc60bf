/**
 * `snapshot create --disk-only --quiesce` on the real Debian image, whose qemu-guest-agent freezes the guest's
 * filesystems: the snapshot's file then holds a clean ext4 (no journal to replay), and the guest is thawed.
 * (The tiny test guest has no agent; running qemu-ga on the host would freeze the host's filesystems.)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestAgent } from '../../src/qmp/guest-agent.ts';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { DEBIAN_IMAGE_PARTITION_OFFSET_BYTES, debianImage } from '../helpers/debian-image.ts';

const LAUNCH_TIMEOUT_MS = 600_000;

describe('snapshot --quiesce through the guest agent of the real Debian image', { timeout: 900_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-e2e-quiesce-');
  const work = mkdtempSync(join(tmpdir(), 'virtnode-e2e-quiesce-work-'));
  let loop: string | undefined;

  const ok = async (args: string[], timeoutMs = 120_000) => {
    const r = await virtnode(home, args, { timeoutMs });
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    await ok(['image', 'import', debianImage(), '--name', 'debian-12'], 300_000);
    await ok(['launch', 'debian-12', '--name', 'quiet', '--memory', '1G'], LAUNCH_TIMEOUT_MS);
  }, LAUNCH_TIMEOUT_MS + 300_000);

  afterAll(async () => {
    if (loop !== undefined) spawnSync('losetup', ['-d', loop]);
    await virtnode(home, ['delete', '--force', 'quiet']);
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('freezes, snapshots and thaws; the snapshot holds a clean filesystem', async () => {
    await ok(['exec', 'quiet', '--', 'sh', '-c', 'echo before-quiesce | sudo tee /var/tmp/quiesce-marker >/dev/null']);
    const out = await ok(['snapshot', 'create', 'quiet', 'qs', '--disk-only', '--quiesce']);
    expect(out).toContain('Created external snapshot qs of quiet (disks only)');
    const frozen = /froze (\d+) guest filesystem\(s\) through the guest agent, thawed after/.exec(out);
    expect(frozen, out).not.toBeNull();
    expect(Number(frozen![1])).toBeGreaterThanOrEqual(1);

    // Thawed: the agent says so, and the guest writes again.
    const agent = await GuestAgent.connect(join(home, 'instances', 'quiet', 'qga.sock'));
    try {
      expect(await agent.fsfreezeStatus()).toBe('thawed');
    } finally {
      agent.close();
    }
    await ok(['exec', 'quiet', '--', 'sh', '-c', 'echo after | sudo tee /var/tmp/after-quiesce >/dev/null']);

    // The frozen file (the disk under the new overlay) holds an ext4 that needs no journal recovery.
    const info = JSON.parse(await ok(['snapshot', 'ls', 'quiet', '--json'])) as Array<{ disks: Array<{ file: string }> }>;
    const frozenFile = info[0]!.disks[0]!.file;
    const raw = join(work, 'snapshot.raw');
    execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', frozenFile, raw], { timeout: 300_000 });
    loop = execFileSync('losetup', ['--find', '--show', '--read-only', '--offset', String(DEBIAN_IMAGE_PARTITION_OFFSET_BYTES), raw], { encoding: 'utf8' }).trim();
    const fsck = spawnSync('e2fsck', ['-fn', loop], { encoding: 'utf8' });
    expect(fsck.status, `${fsck.stdout}${fsck.stderr}`).toBe(0);
    const debugfs = execFileSync('debugfs', ['-R', 'cat /var/tmp/quiesce-marker', loop], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(debugfs).toBe('before-quiesce\n');
  });
});
