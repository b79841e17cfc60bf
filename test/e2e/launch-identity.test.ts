/**
 * End to end on the Debian image virtnode builds, under TCG, with real cloud-init: launch through the CLI,
 * verify over SSH with strict host key checking, identity per instance, and a restart that keeps identity.
 * On the same guests: `snapshot create --disk-only --quiesce`, whose freeze goes through the image's
 * qemu-guest-agent (the tiny test guest has no agent, and qemu-ga on the host would freeze the host's filesystems).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createCore } from '../../src/daemon/core.ts';
import { GuestAgent } from '../../src/qmp/guest-agent.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { DEBIAN_IMAGE_PARTITION_OFFSET_BYTES, debianImage } from '../helpers/debian-image.ts';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus.ts';

const LAUNCH_TIMEOUT_MS = 600_000;

interface Info {
  name: string;
  state: string;
  instanceId: string;
  nics: Array<{ mac: string }>;
  ssh: { user: string; address: string; hostKeyFingerprints: string[] };
  readiness?: { detail: string };
}

const USER_DATA = `#cloud-config
users:
  - name: ada
    groups: [adm]
    shell: /bin/bash
    sudo: ALL=(ALL) NOPASSWD:ALL
    lock_passwd: true
    ssh_authorized_keys:
      - SSH_KEY
write_files:
  - path: /etc/virtnode-test/greeting
    content: "hello from cloud-init\\n"
    permissions: '0640'
    owner: root:adm
bootcmd:
  - [sh, -c, "echo boot >> /var/tmp/bootcmd-runs"]
runcmd:
  - [sh, -c, "echo run >> /var/tmp/runcmd-runs"]
mounts:
  - [tmpfs, /mnt/scratch, tmpfs, "size=16m", "0", "0"]
`;

describe('virtnode launch on the real Debian image', () => {
  const { home, cleanup } = tempHome('virtnode-e2e-');
  const work = mkdtempSync(join(tmpdir(), 'virtnode-e2e-work-'));
  const userKey = join(work, 'id_ed25519');
  let infoA: Info;
  let infoB: Info;
  let loop: string | undefined;

  const info = async (name: string): Promise<Info> => JSON.parse((await virtnode(home, ['info', name, '--format', 'json'])).stdout) as Info;
  /** Runs a command as `ada` with the user's own key and virtnode's known_hosts, strictly verified. */
  const sshAsAda = (i: Info, command: string): string => {
    const [host, port] = i.ssh.address.split(':') as [string, string];
    return execFileSync(
      'ssh',
      ['-i', userKey, '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${join(home, 'ssh', 'known_hosts')}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-p', port, `ada@${host}`, command],
      { encoding: 'utf8', timeout: 60_000 },
    );
  };
  const vexec = async (name: string, ...command: string[]) => {
    const r = await virtnode(home, ['exec', name, '--', ...command]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    const image = debianImage();
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ada@test', '-f', userKey]);
    writeFileSync(join(work, 'user-data.yaml'), USER_DATA.replace('SSH_KEY', readFileSync(`${userKey}.pub`, 'utf8').trim()));
    const imported = await virtnode(home, ['image', 'import', image, '--name', 'debian-12']);
    expect(imported.code, imported.stderr).toBe(0);
    // Two launches at once, from the same image.
    const common = ['debian-12', '--memory', '1G', '--cpus', '1', '--ssh-key', `${userKey}.pub`, '--user-data', join(work, 'user-data.yaml'), '--timezone', 'Europe/Paris'];
    const [a, b] = await Promise.all([
      virtnode(home, ['launch', ...common, '--name', 'alpha'], { timeoutMs: LAUNCH_TIMEOUT_MS }),
      virtnode(home, ['launch', ...common, '--name', 'beta', '--seed', 'http'], { timeoutMs: LAUNCH_TIMEOUT_MS }),
    ]);
    for (const r of [a, b]) {
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      for (const phase of ['image', 'disk', 'seed', 'booting', 'ssh', 'cloud-init', 'ready']) expect(r.stderr).toMatch(new RegExp(`\\] ${phase} `));
    }
    infoA = await info('alpha');
    infoB = await info('beta');
  }, LAUNCH_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    if (loop !== undefined) spawnSync('losetup', ['-d', loop]);
    for (const name of ['alpha', 'beta']) await virtnode(home, ['delete', '--force', name]);
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('cloud-init applied the user-data: user and sudo, hostname, timezone, files, runcmd, bootcmd, mounts', () => {
    expect(sshAsAda(infoA, 'hostname').trim()).toBe('alpha');
    expect(sshAsAda(infoA, 'id -nG').split(/\s+/)).toContain('adm');
    expect(sshAsAda(infoA, 'sudo -n id -u').trim()).toBe('0');
    expect(sshAsAda(infoA, 'cat /etc/timezone').trim()).toBe('Europe/Paris');
    expect(sshAsAda(infoA, 'sudo -n cat /etc/virtnode-test/greeting')).toBe('hello from cloud-init\n');
    expect(sshAsAda(infoA, 'stat -c "%a %U:%G" /etc/virtnode-test/greeting').trim()).toBe('640 root:adm');
    expect(sshAsAda(infoA, 'cat /var/tmp/runcmd-runs')).toBe('run\n');
    expect(sshAsAda(infoA, 'cat /var/tmp/bootcmd-runs')).toBe('boot\n');
    expect(sshAsAda(infoA, 'findmnt -n -o FSTYPE /mnt/scratch').trim()).toBe('tmpfs');
  });

  it('cloud-init finished without errors, from the NoCloud seed: an ISO disk, and HTTP for this guest only', async () => {
    const expected = { alpha: /DataSourceNoCloud \[seed=\/dev\/vd/, beta: /DataSourceNoCloudNet \[seed=dmi,http:\/\/10\.0\.2\.100\// };
    for (const [name, datasource] of Object.entries(expected)) {
      const status = await vexec(name, 'cloud-init', 'status', '--long');
      expect(status).toMatch(/^status: done$/m);
      expect(status).toMatch(datasource);
      expect(status).not.toMatch(/^errors:\s*\n\s+-/m);
    }
    expect(infoA.readiness?.detail).toMatch(/^done \(datasource NoCloud\)/);
    expect(infoB.readiness?.detail).toMatch(/^done \(datasource NoCloudNet\)/);
    // The HTTP seed has no disk: beta has only its own.
    expect((await vexec('beta', 'ls', '/sys/block')).split(/\s+/).filter((d) => d.startsWith('vd'))).toEqual(['vda']);
  });

  it("virtnode booted the image with its one-process flag: cloud-init's stages ran in one Python process, its own units were skipped", async () => {
    expect(await vexec('alpha', 'cat', '/proc/cmdline')).toContain('virtnode.cloud_init=one_process');
    const state = async (unit: string) =>
      Object.fromEntries((await vexec('alpha', 'systemctl', 'show', '-p', 'ActiveState,ConditionResult,ExecMainStatus', unit)).trim().split('\n').map((l) => l.split('=', 2)));
    for (const unit of ['virtnode-cloud-init.service', 'virtnode-cloud-init-network.service', 'virtnode-cloud-final.service']) {
      expect(await state(unit)).toEqual({ ActiveState: 'active', ConditionResult: 'yes', ExecMainStatus: '0' });
    }
    for (const unit of ['cloud-init-local.service', 'cloud-init.service', 'cloud-final.service']) {
      expect(await state(unit)).toMatchObject({ ConditionResult: 'no' });
    }
    // virtnode's own modules came compiled in the image, not compiled at this boot.
    const [compiledAt, now, uptime] = (await vexec('alpha', 'sh', '-c', 'stat -c %Y /usr/lib/virtnode/__pycache__/first_boot_common.*.pyc; date +%s; cut -d" " -f1 /proc/uptime')).trim().split('\n').map(Number);
    expect(compiledAt!).toBeLessThan(now! - uptime!);
    // Every stage of this boot announced itself in that one unit's output (its process and the tee of its output).
    const journal = await vexec('alpha', 'sudo', '-n', 'journalctl', '-b', '-o', 'cat', '--no-pager', '-u', 'virtnode-cloud-init.service');
    const stages = [...journal.matchAll(/Cloud-init v\. \S+ running '([^']+)'/g)].map((m) => m[1]);
    expect(stages).toEqual(['init-local', 'init', 'modules:final']);
    // The image's configuration with virtnode's seed passes cloud-init's schema check (it warned at every boot).
    expect(await vexec('alpha', 'sudo', '-n', 'cat', '/var/log/cloud-init.log')).not.toContain('Invalid cloud-config');
  });

  // cloud-init 22.4 writes injected public host keys 0600, hence sudo.
  it("the guest's SSH host key is the one virtnode generated (strict checking already proved the match)", async () => {
    const fingerprint = (await vexec('alpha', 'sudo', '-n', 'ssh-keygen', '-l', '-E', 'sha256', '-f', '/etc/ssh/ssh_host_ed25519_key.pub')).split(' ')[1];
    expect(infoA.ssh.hostKeyFingerprints).toContain(fingerprint);
  });

  it('two instances from one image have different identities', async () => {
    const machineIds = await Promise.all(['alpha', 'beta'].map((n) => vexec(n, 'cat', '/etc/machine-id')));
    for (const id of machineIds) expect(id.trim()).toMatch(/^[0-9a-f]{32}$/);
    expect(machineIds[0]).not.toBe(machineIds[1]);
    expect(infoA.ssh.hostKeyFingerprints).not.toEqual(infoB.ssh.hostKeyFingerprints);
    expect(infoA.nics[0]!.mac).not.toBe(infoB.nics[0]!.mac);
    expect(infoA.instanceId).not.toBe(infoB.instanceId);
    expect((await vexec('beta', 'hostname')).trim()).toBe('beta');
    const guestInstanceIds = await Promise.all(['alpha', 'beta'].map((n) => vexec(n, 'cat', '/run/cloud-init/.instance-id')));
    expect(guestInstanceIds.map((s) => s.trim())).toEqual([infoA.instanceId, infoB.instanceId]);
  });

  it('exec returns the remote exit code; shell-quoting keeps arguments intact', async () => {
    const r = await virtnode(home, ['exec', 'alpha', '--', 'sh', '-c', 'exit 7']);
    expect(r.code).toBe(7);
    expect(await vexec('alpha', 'printf', '%s|', 'a b', "it's", '$HOME')).toBe("a b|it's|$HOME|");
  });

  it('/metrics has the network counters of user-mode NICs from the guest agent (source="guest-agent"), and they move', async () => {
    const core = createCore(statePaths(home), pino({ level: 'silent' }));
    try {
      const metrics = await core.metrics();
      const scrape = async () => parsePrometheusText(await metrics.text());
      const labels = { instance: 'beta', nic: '0', network: 'user', source: 'guest-agent' };
      const first = await scrape();
      const rx = sampleValue(first, 'virtnode_instance_network_receive_bytes_total', labels);
      const tx = sampleValue(first, 'virtnode_instance_network_transmit_bytes_total', labels);
      expect(rx).toBeGreaterThan(0); // the seed over HTTP and SSH sessions already went through it
      expect(tx).toBeGreaterThan(0);
      expect(sampleValue(first, 'virtnode_instance_network_receive_packets_total', labels)).toBeGreaterThan(0);
      await vexec('beta', 'sh', '-c', 'head -c 150000 /dev/urandom | base64'); // ~200 kB back over SSH
      await new Promise((r) => setTimeout(r, 2_100)); // past the collection cache
      const second = await scrape();
      expect(sampleValue(second, 'virtnode_instance_network_transmit_bytes_total', labels)! - tx!).toBeGreaterThan(200_000);
    } finally {
      core.db.close();
    }
  });

  it('after the first boot, the HTTP seed gives a user in the guest neither the host keys nor the password hash', async () => {
    // The guest's cloud-init phoned home at the end of its first boot (launch marks it too).
    expect(existsSync(join(home, 'instances', 'beta', 'seed', 'first-boot-done'))).toBe(true);
    const get = (path: string) => vexec('beta', 'bash', '-c', `exec 3<>/dev/tcp/10.0.2.100/80; printf 'GET ${path} HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3`);
    const userData = await get('/user-data');
    expect(userData).toMatch(/^HTTP\/1.0 200 OK\r\n/);
    expect(userData).toContain('echo boot >> /var/tmp/bootcmd-runs'); // the user's settings are still there
    expect(userData).not.toMatch(/PRIVATE KEY|ssh_keys|hashed_passwd/);
    expect(await get('/meta-data')).toContain(`instance-id: ${infoB.instanceId}`);
  });

  it('snapshot --quiesce freezes through the guest agent, snapshots and thaws; the snapshot holds a clean filesystem', async () => {
    const ok = async (args: string[]) => {
      const r = await virtnode(home, args, { timeoutMs: 120_000 });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    await vexec('alpha', 'sh', '-c', 'echo before-quiesce | sudo tee /var/tmp/quiesce-marker >/dev/null');
    const out = await ok(['snapshot', 'create', 'alpha', 'qs', '--disk-only', '--quiesce']);
    expect(out).toContain('Created external snapshot qs of alpha (disks only)');
    const frozen = /froze (\d+) guest filesystem\(s\) through the guest agent, thawed after/.exec(out);
    expect(frozen, out).not.toBeNull();
    expect(Number(frozen![1])).toBeGreaterThanOrEqual(1);

    // Thawed: the agent says so, and the guest writes again.
    const agent = await GuestAgent.connect(join(home, 'instances', 'alpha', 'qga.sock'));
    try {
      expect(await agent.fsfreezeStatus()).toBe('thawed');
    } finally {
      agent.close();
    }
    await vexec('alpha', 'sh', '-c', 'echo after | sudo tee /var/tmp/after-quiesce >/dev/null');

    // The frozen file (the disk under the new overlay) holds an ext4 that needs no journal recovery.
    const snapshots = JSON.parse(await ok(['snapshot', 'ls', 'alpha', '--json'])) as Array<{ disks: Array<{ file: string }> }>;
    const raw = join(work, 'snapshot.raw');
    execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', snapshots[0]!.disks[0]!.file, raw], { timeout: 300_000 });
    try {
      loop = execFileSync('losetup', ['--find', '--show', '--read-only', '--offset', String(DEBIAN_IMAGE_PARTITION_OFFSET_BYTES), raw], { encoding: 'utf8' }).trim();
      const fsck = spawnSync('e2fsck', ['-fn', loop], { encoding: 'utf8' });
      expect(fsck.status, `${fsck.stdout}${fsck.stderr}`).toBe(0);
      const debugfs = execFileSync('debugfs', ['-R', 'cat /var/tmp/quiesce-marker', loop], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      expect(debugfs).toBe('before-quiesce\n');
    } finally {
      if (loop !== undefined) spawnSync('losetup', ['-d', loop]);
      loop = undefined;
      rmSync(raw, { force: true });
    }
  });

  it('a restart keeps the identity and does not re-run per-instance modules (ISO seed and HTTP seed)', async () => {
    const names = ['alpha', 'beta'] as const;
    const first = { alpha: infoA, beta: infoB };
    const machineIds = await Promise.all(names.map((n) => vexec(n, 'cat', '/etc/machine-id')));
    const restarted = await Promise.all(names.map((n) => virtnode(home, ['restart', n], { timeoutMs: 240_000 })));
    for (const r of restarted) expect(r.code, r.stderr).toBe(0);
    await Promise.all(
      names.map(async (name, i) => {
        // Wait for SSH on the new forwarded port, verified against the same host key.
        const after = await info(name);
        const deadline = Date.now() + 400_000;
        for (;;) {
          const r = await virtnode(home, ['exec', name, '--', 'cloud-init', 'status', '--wait']);
          if (r.code === 0) break;
          if (Date.now() > deadline) throw new Error(`${name} did not come back: ${r.stderr}`);
          await new Promise((res) => setTimeout(res, 3_000));
        }
        expect(await vexec(name, 'cat', '/etc/machine-id')).toBe(machineIds[i]);
        expect(after.instanceId).toBe(first[name].instanceId);
        expect(after.ssh.hostKeyFingerprints).toEqual(first[name].ssh.hostKeyFingerprints);
        expect(await vexec(name, 'cat', '/var/tmp/runcmd-runs')).toBe('run\n'); // per instance: once
        expect(await vexec(name, 'cat', '/var/tmp/bootcmd-runs')).toBe('boot\nboot\n'); // per boot: twice
      }),
    );
  }, 900_000);
});
