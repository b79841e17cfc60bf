/**
 * Sealing on the real Debian image, both ways: `template create` of a running instance seals it through
 * qemu-guest-agent, of a stopped one offline in the sealing appliance. Each template's disk is then read offline
 * (debugfs on its flattened raw form): no identity left, the customization kept.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { DEBIAN_IMAGE_PARTITION_OFFSET_BYTES, debianImage } from '../helpers/debian-image.ts';

const LAUNCH_TIMEOUT_MS = 900_000;

describe('template create on the real Debian image: through the guest agent, and offline', () => {
  const { home, cleanup } = tempHome('virtnode-e2e-seal-');
  const work = mkdtempSync(join(tmpdir(), 'virtnode-e2e-seal-work-'));
  const made: Record<string, { stdout: string; disk: string; raw: string; machineId: string }> = {};

  const ok = async (args: string[], timeoutMs = 300_000) => {
    const r = await virtnode(home, args, { timeoutMs });
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const debugfs = (raw: string, request: string): string =>
    execFileSync('debugfs', ['-R', request, `${raw}?offset=${DEBIAN_IMAGE_PARTITION_OFFSET_BYTES}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const exists = (raw: string, path: string) => execFileSync('debugfs', ['-R', `stat ${path}`, `${raw}?offset=${DEBIAN_IMAGE_PARTITION_OFFSET_BYTES}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).includes('Inode:');
  /** Names in a directory listing (`ls -p`), without . and .. */
  const entries = (raw: string, dir: string) =>
    debugfs(raw, `ls -p ${dir}`)
      .split('\n')
      .filter((l) => l.startsWith('/'))
      .map((l) => l.split('/')[5] ?? '')
      .filter((n) => n !== '' && n !== '.' && n !== '..');

  beforeAll(async () => {
    await ok(['image', 'import', debianImage(), '--name', 'debian-12']);
    const launched = await Promise.all(
      ['live', 'cold'].map((name) => virtnode(home, ['launch', 'debian-12', '--name', name, '--memory', '1G'], { timeoutMs: LAUNCH_TIMEOUT_MS })),
    );
    for (const r of launched) expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const machineIds: Record<string, string> = {};
    for (const name of ['live', 'cold']) {
      // A used guest: a customization, shell histories, junk in /tmp, besides what first boot made.
      await ok(['exec', name, '--', 'sh', '-c', 'echo hist > ~/.bash_history && sudo sh -c "echo customized > /etc/virtnode-custom && echo secret > /root/.bash_history && echo junk > /tmp/junk"']);
      machineIds[name] = (await ok(['exec', name, '--', 'cat', '/etc/machine-id'])).trim();
      expect(machineIds[name]).toMatch(/^[0-9a-f]{32}$/);
    }
    await ok(['stop', 'cold']);
    const [live, cold] = await Promise.all([ok(['template', 'create', 'live', 'tlive']), ok(['template', 'create', 'cold', 'tcold'])]);
    for (const [name, stdout] of [['tlive', live], ['tcold', cold]] as const) {
      const disk = (JSON.parse(await ok(['template', 'info', name, '--format', 'json'])) as { disk: string }).disk;
      const raw = join(work, `${name}.raw`);
      execFileSync('qemu-img', ['convert', '-O', 'raw', disk, raw]);
      made[name] = { stdout, disk, raw, machineId: machineIds[name === 'tlive' ? 'live' : 'cold']! };
    }
  }, LAUNCH_TIMEOUT_MS + 300_000);

  afterAll(() => {
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('a running guest with qemu-guest-agent is sealed through the agent, a stopped one offline; the output says which', () => {
    expect(made['tlive']!.stdout).toMatch(/^Template tlive made of live; sealed through the guest agent \(in the running guest and again at the end of its shutdown\): \d+ changes$/m);
    expect(made['tcold']!.stdout).toMatch(/^Template tcold made of cold; sealed offline \(sealing appliance, root \/dev\/vda1 ext4\): \d+ changes$/m);
  });

  it.each(['tlive', 'tcold'])('%s: no machine-id, host keys, cloud-init state, leases, random seed, logs, histories or /tmp; the customization stays', (name) => {
    const { raw, machineId } = made[name]!;
    expect(debugfs(raw, 'stat /etc/machine-id')).toMatch(/Size: 0\b/);
    expect(exists(raw, '/var/lib/dbus/machine-id')).toBe(false);
    expect(entries(raw, '/etc/ssh').filter((n) => n.startsWith('ssh_host_'))).toEqual([]);
    expect(entries(raw, '/etc/ssh')).toContain('sshd_config');
    const cloud = entries(raw, '/var/lib/cloud');
    for (const state of ['instances', 'instance', 'data', 'sem']) expect(cloud).not.toContain(state);
    expect(entries(raw, '/var/lib/dhcp')).toEqual([]);
    expect(exists(raw, '/var/lib/systemd/random-seed')).toBe(false);
    expect(entries(raw, '/var/log/journal')).toEqual([]);
    expect(exists(raw, `/var/log/journal/${machineId}`)).toBe(false);
    const logFiles = debugfs(raw, 'ls -p /var/log')
      .split('\n')
      .filter((l) => /^\/\d+\/10/.test(l)) // regular files (mode 10xxxx): /inode/mode/uid/gid/name/size/
      .map((l) => l.split('/'));
    expect(logFiles.length).toBeGreaterThan(0);
    for (const f of logFiles) expect(`${f[5]}: ${f[6]}`).toBe(`${f[5]}: 0`);
    expect(exists(raw, '/root/.bash_history')).toBe(false);
    expect(exists(raw, '/home/virtnode/.bash_history')).toBe(false);
    expect(entries(raw, '/tmp')).toEqual([]);
    expect(debugfs(raw, 'cat /etc/virtnode-custom')).toBe('customized\n');
  });

  it('the templates are read-only and unstartable; their instances are gone', async () => {
    const list = JSON.parse(await ok(['list', '--format', 'json'])) as unknown[];
    expect(list).toEqual([]);
    for (const name of ['tlive', 'tcold']) {
      const r = await virtnode(home, ['start', name]);
      expect(r.code).toBe(5);
      expect(r.stderr).toContain(`${name} is a template`);
      const verify = JSON.parse(await ok(['template', 'info', name, '--verify', '--format', 'json'])) as { verified: { unchanged: boolean } };
      expect(verify.verified.unchanged).toBe(true);
    }
  });
});
