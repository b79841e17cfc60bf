/**
 * Identity end to end on the Debian image virtnode builds, under TCG, with real cloud-init, on two guests launched
 * at once through the CLI (`alpha` with the NoCloud seed on an ISO disk, `beta` with the HTTP seed): verified over
 * SSH with strict host key checking, identity per instance, and a restart that keeps identity. On the same guests:
 * `snapshot create --disk-only --quiesce`, whose freeze goes through the image's qemu-guest-agent (the tiny test
 * guest has no agent, and qemu-ga on the host would freeze the host's filesystems).
 *
 * Then the same two guests, used, become templates, sealed both ways: `beta`, running, through qemu-guest-agent;
 * `alpha`, stopped, offline in the sealing appliance. Each template's disk is read offline (debugfs on its
 * flattened raw form): no identity left, the customization kept. Three linked clones of the first boot at once on
 * one managed NAT network; they carry the customization and share no identity: machine-id, SSH host keys, MACs, IP
 * addresses, DHCP client identities, hostnames, instance-ids. The template's disk is unchanged (sha256 before and
 * after). One file, so that the templates are made of the launched guests: two Debian boots fewer under TCG.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createCore } from '../../src/daemon/core.ts';
import { agentPortOpen } from '../../src/instances/agent-port.ts';
import { GuestAgent } from '../../src/qmp/guest-agent.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { DEBIAN_IMAGE_PARTITION_OFFSET_BYTES, debianImage } from '../helpers/debian-image.ts';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus.ts';

const LAUNCH_TIMEOUT_MS = 900_000;
const CLONES = ['clone-a', 'clone-b', 'clone-c'] as const;
// Unique to this test file (test files share one network namespace).
const NETWORK = 'tmplnet';
const SUBNET = '10.96.0.0/24';

interface Info {
  name: string;
  state: string;
  instanceId: string;
  nics: Array<{ mac: string }>;
  ssh: { user: string; address: string; hostKeyFingerprints: string[] };
  readiness?: { detail: string };
}


interface CloneInfo {
  name: string;
  instanceId: string;
  nics: Array<{ mac: string; network: string; address?: string }>;
  disks: Array<{ id: string; path: string }>;
  ssh: { hostKeyFingerprints: string[] };
}

interface Observed {
  info: CloneInfo;
  machineId: string;
  hostname: string;
  instanceId: string;
  mac: string;
  /** The address the guest has on its NIC on the NAT network (eth1; eth0 is user-mode, for SSH). */
  natAddress: string;
  natMac: string;
  hostKey: string;
  customization: string;
}

function pairwiseDistinct(values: string[]): void {
  expect(new Set(values).size, values.join(', ')).toBe(values.length);
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

describe('identity on the real Debian image: two launches, then templates of them and their linked clones', () => {
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
    for (const name of [...CLONES, 'alpha', 'beta']) await virtnode(home, ['delete', '--force', name]);
    for (const name of ['golden', 'offline']) await virtnode(home, ['template', 'rm', name]);
    await virtnode(home, ['network', 'rm', NETWORK]);
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  describe('virtnode launch', () => {
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
    }, 180_000); // nine SSH logins into a TCG guest: 16 s on a quiet machine, 60 s with the machine overloaded

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
    }, 180_000);

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
        // qemu-ga holds its port open, as QEMU reports it (without it, the agent is not asked at all).
      expect(await agentPortOpen(join(home, 'instances', 'beta', 'qmp-query.sock'), 5_000)).toBe(true);
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

  describe('templates sealed live and offline; three linked clones of one share no identity', () => {
    /** The two templates: `golden` sealed through the agent (the clones' base), `offline` sealed in the appliance. */
    const sealed: Record<string, { stdout: string; raw: string; machineId: string }> = {};
    let templateDisk = '';
    let sumBefore = '';
    let templateMachineId = '';
    const observed: Record<string, Observed> = {};

    const ok = async (args: string[], timeoutMs = 300_000) => {
      const r = await virtnode(home, args, { timeoutMs });
      expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const guestOut = async (name: string, ...command: string[]) => (await vexec(name, ...command)).trim();
    const sha256 = (path: string) => execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0]!;
    const debugfs = (raw: string, request: string): string =>
      execFileSync('debugfs', ['-R', request, `${raw}?offset=${DEBIAN_IMAGE_PARTITION_OFFSET_BYTES}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const exists = (raw: string, path: string) => debugfs(raw, `stat ${path}`).includes('Inode:');
    /** Names in a directory listing (`ls -p`), without . and .. */
    const entries = (raw: string, dir: string) =>
      debugfs(raw, `ls -p ${dir}`)
        .split('\n')
        .filter((l) => l.startsWith('/'))
        .map((l) => l.split('/')[5] ?? '')
        .filter((n) => n !== '' && n !== '.' && n !== '..');

    beforeAll(async () => {
      await ok(['network', 'create', NETWORK, '--nat', '--subnet', SUBNET]);
      const sources = { beta: 'golden', alpha: 'offline' } as const;
      const machineIds: Record<string, string> = {};
      for (const name of Object.keys(sources)) {
        // A used guest: a customization, shell histories, junk in /tmp, besides what its boots made.
        await guestOut(name, 'sh', '-c', 'echo hist > ~/.bash_history && sudo sh -c "echo \'made before the template\' > /etc/virtnode-customization && echo secret > /root/.bash_history && echo junk > /tmp/junk"');
        machineIds[name] = await guestOut(name, 'cat', '/etc/machine-id');
        expect(machineIds[name]).toMatch(/^[0-9a-f]{32}$/);
      }
      templateMachineId = machineIds['beta']!;
      await ok(['stop', 'alpha']);
      await ok(['snapshot', 'rm', 'alpha', 'qs']); // a template's source has no snapshots: the quiesced one is merged back
      const made = await Promise.all([ok(['template', 'create', 'beta', 'golden']), ok(['template', 'create', 'alpha', 'offline'])]);
      for (const [i, [source, template]] of Object.entries(sources).entries()) {
        const disk = (JSON.parse(await ok(['template', 'info', template, '--format', 'json'])) as { disk: string }).disk;
        const raw = join(work, `${template}.raw`);
        execFileSync('qemu-img', ['convert', '-O', 'raw', disk, raw]);
        sealed[template] = { stdout: made[i]!, raw, machineId: machineIds[source]! };
      }
      templateDisk = (JSON.parse(await ok(['template', 'info', 'golden', '--format', 'json'])) as { disk: string }).disk;
      sumBefore = sha256(templateDisk);

      const launched = await Promise.all(CLONES.map((name) => virtnode(home, ['launch', 'golden', '--name', name, '--memory', '768M', '--network', NETWORK], { timeoutMs: LAUNCH_TIMEOUT_MS })));
      for (const r of launched) expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      for (const name of CLONES) {
        const info = JSON.parse(await ok(['info', name, '--format', 'json'])) as CloneInfo;
        observed[name] = {
          info,
          machineId: await guestOut(name, 'cat', '/etc/machine-id'),
          hostname: await guestOut(name, 'hostname'),
          instanceId: await guestOut(name, 'cat', '/run/cloud-init/.instance-id'),
          mac: await guestOut(name, 'cat', '/sys/class/net/eth0/address'),
          natMac: await guestOut(name, 'cat', '/sys/class/net/eth1/address'),
          natAddress: (await guestOut(name, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth1')).split(/\s+/)[3]?.split('/')[0] ?? '',
          // cloud-init writes injected public host keys 0600, hence sudo.
          hostKey: (await guestOut(name, 'sudo', '-n', 'ssh-keygen', '-l', '-E', 'sha256', '-f', '/etc/ssh/ssh_host_ed25519_key.pub')).split(' ')[1]!,
          customization: await guestOut(name, 'cat', '/etc/virtnode-customization'),
        };
      }
    }, 2 * LAUNCH_TIMEOUT_MS);

    it('a running guest with qemu-guest-agent is sealed through the agent, a stopped one offline; the output says which', () => {
      expect(sealed['golden']!.stdout).toMatch(/^Template golden made of beta; sealed through the guest agent \(in the running guest and again at the end of its shutdown\): \d+ changes$/m);
      expect(sealed['offline']!.stdout).toMatch(/^Template offline made of alpha; sealed offline \(sealing appliance, root \/dev\/vda1 ext4\): \d+ changes$/m);
    });

    it.each(['golden', 'offline'])('%s: no machine-id, host keys, cloud-init state, leases, random seed, logs, histories or /tmp; the customization stays', (name) => {
      const { raw, machineId } = sealed[name]!;
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
      expect(debugfs(raw, 'cat /etc/virtnode-customization')).toBe('made before the template\n');
    });

    it('the templates are read-only and unstartable; their source instances are gone', async () => {
      const names = (JSON.parse(await ok(['list', '--format', 'json'])) as Array<{ name: string }>).map((i) => i.name);
      expect(names.sort()).toEqual([...CLONES]);
      for (const name of ['golden', 'offline']) {
        const r = await virtnode(home, ['start', name]);
        expect(r.code).toBe(5);
        expect(r.stderr).toContain(`${name} is a template`);
        const verify = JSON.parse(await ok(['template', 'info', name, '--verify', '--format', 'json'])) as { verified: { unchanged: boolean } };
        expect(verify.verified.unchanged).toBe(true);
      }
    });

    it('the clones are linked clones of the template and carry its customization', () => {
      for (const name of CLONES) {
        const disk = observed[name]!.info.disks.find((d) => d.id === 'disk0')!.path;
        const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', disk], { encoding: 'utf8' })) as { 'backing-filename': string };
        expect(info['backing-filename']).toBe(templateDisk);
        expect(observed[name]!.customization).toBe('made before the template');
      }
    });

    it('pairwise distinct machine-ids, all new (not the template source\'s)', () => {
      const ids = CLONES.map((n) => observed[n]!.machineId);
      for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
      pairwiseDistinct([...ids, templateMachineId]);
    });

    it('pairwise distinct SSH host keys, each the one virtnode generated and put in known_hosts', () => {
      pairwiseDistinct(CLONES.map((n) => observed[n]!.hostKey));
      for (const n of CLONES) expect(observed[n]!.info.ssh.hostKeyFingerprints).toContain(observed[n]!.hostKey);
    });

    it('pairwise distinct MACs, hostnames (= names) and cloud-init instance-ids, as virtnode recorded them', () => {
      pairwiseDistinct(CLONES.flatMap((n) => [observed[n]!.mac, observed[n]!.natMac]));
      for (const n of CLONES) expect(observed[n]!.natMac).toBe(observed[n]!.info.nics[1]!.mac);
      pairwiseDistinct(CLONES.map((n) => observed[n]!.instanceId));
      for (const n of CLONES) {
        expect(observed[n]!.mac).toBe(observed[n]!.info.nics[0]!.mac);
        expect(observed[n]!.hostname).toBe(n);
        expect(observed[n]!.instanceId).toBe(observed[n]!.info.instanceId);
      }
    });

    it('pairwise distinct IP addresses on the NAT network, each from a DHCP lease of its own (distinct client identities)', () => {
      const addresses = CLONES.map((n) => observed[n]!.natAddress);
      for (const a of addresses) expect(a).toMatch(/^10\.96\.0\.\d+$/);
      pairwiseDistinct(addresses);
      // dnsmasq's lease file: "expiry mac address hostname client-id"; a DHCP server tells clients apart by the
      // client-id when one is sent, else by the hardware address.
      const leases = readFileSync(join(home, 'networks', NETWORK, 'dnsmasq.leases'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => line.split(' '))
        .map(([, mac, address, hostname, clientId]) => ({ mac: mac!, address: address!, hostname, identity: clientId === undefined || clientId === '*' ? `mac ${mac}` : `client-id ${clientId}` }));
      for (const n of CLONES) {
        const mine = leases.filter((l) => l.mac === observed[n]!.natMac);
        expect(mine, `${n}: ${JSON.stringify(leases)}`).toHaveLength(1);
        expect(mine[0]!.address).toBe(observed[n]!.natAddress);
        expect(observed[n]!.info.nics[1]).toMatchObject({ network: NETWORK, address: observed[n]!.natAddress });
      }
      pairwiseDistinct(CLONES.map((n) => leases.find((l) => l.mac === observed[n]!.natMac)!.identity));
    });

    it("the template's disk is unchanged, and the template cannot go while the clones sit on it", async () => {
      expect(sha256(templateDisk)).toBe(sumBefore);
      const rm = await virtnode(home, ['template', 'rm', 'golden']);
      expect(rm.code).toBe(4);
      expect(rm.stderr).toContain('template golden is the base of 3 instances: clone-a, clone-b, clone-c');
    });
  });
});
