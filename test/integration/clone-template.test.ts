/**
 * Clones and templates on real QEMU with the tiny test guest: identities, linked overlays, refusals, the
 * template's disk never written, crash safety, and the offline seal (the sealing appliance) on a disk that holds
 * a small Linux root filesystem with the identity files a used guest carries.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qemuPidsUnder, tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];
const BOOT_TIMEOUT_MS = 90_000;

interface InstanceJson {
  boot?: { kernel: string; initrd?: string; cmdline?: string };
  name: string;
  state: string;
  uuid: string;
  smbiosUuid: string;
  instanceId?: string;
  nics: Array<{ mac: string }>;
  disks: Array<{ id: string; path: string; format: string }>;
  clone?: { from: string; mode: string; base?: string; seal: { method: string; root?: string; changes: string[] } | null };
}

/** Files a used Linux guest carries that no clone may share, and one that must survive (the customization). */
const IDENTITY_FILES: Record<string, string> = {
  'etc/os-release': 'ID=virtnode-test\n',
  'etc/machine-id': '0123456789abcdef0123456789abcdef\n',
  'var/lib/dbus/machine-id': '0123456789abcdef0123456789abcdef\n',
  'etc/ssh/ssh_host_ed25519_key': 'PRIVATE\n',
  'etc/ssh/ssh_host_ed25519_key.pub': 'ssh-ed25519 AAAA\n',
  'etc/ssh/sshd_config': 'PermitRootLogin no\n',
  'var/lib/cloud/instances/i-old/obj.pkl': 'x',
  'var/lib/cloud/data/instance-id': 'i-old\n',
  'var/lib/cloud/sem/config_x': 'x',
  'var/lib/dhcp/dhclient.eth0.leases': 'lease { fixed-address 10.0.2.15; }\n',
  'etc/udev/rules.d/70-persistent-net.rules': 'SUBSYSTEM=="net", ATTR{address}=="52:54:00:12:34:56", NAME="eth0"\n',
  'var/log/syslog': 'old log line\n',
  'var/log/journal/abc/system.journal': 'journal',
  'root/.bash_history': 'secret command\n',
  'home/ada/.bash_history': 'another\n',
  'tmp/junk': 'junk',
  'srv/customization.txt': 'kept\n',
};

describe('clones and templates (tiny guest, TCG)', () => {
  const { home, cleanup } = tempHome('virtnode-clone-');
  const work = mkdtempSync(join(tmpdir(), 'virtnode-clone-work-'));
  const consoleLog = (name: string) => join(home, 'instances', name, 'console.log');
  const info = async (name: string): Promise<InstanceJson> => {
    const r = await virtnode(home, ['info', name, '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as InstanceJson;
  };
  const ok = async (args: string[], timeoutMs = 180_000) => {
    const r = await virtnode(home, args, { timeoutMs });
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r;
  };
  const names = async () => ((JSON.parse((await ok(['list', '--format', 'json'])).stdout) as InstanceJson[]).map((i) => i.name));
  const sha256 = (path: string) => execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0];
  const backing = (path: string): string | undefined =>
    (JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', path], { encoding: 'utf8' })) as { 'backing-filename'?: string })['backing-filename'];
  /** Reads a file of a disk's root filesystem (the whole chain flattened to raw), or undefined when absent. */
  const readGuestFile = (disk: string, file: string): string | undefined => {
    const raw = join(work, `read-${Date.now()}.raw`);
    execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', disk, raw]);
    try {
      const out = execFileSync('debugfs', ['-R', `cat /${file}`, raw], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      const stat = execFileSync('debugfs', ['-R', `stat /${file}`, raw], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return stat.includes('Inode:') ? out : undefined;
    } finally {
      rmSync(raw, { force: true });
    }
  };

  /** An instance whose disk holds a small ext4 root filesystem with a used guest's identity files. */
  const makeUsedInstance = async (name: string) => {
    await ok(['create', name, '--disk-size', '64M', ...bootArgs]);
    const root = join(work, `${name}-root`);
    for (const [file, content] of Object.entries(IDENTITY_FILES)) {
      mkdirSync(join(root, file, '..'), { recursive: true });
      writeFileSync(join(root, file), content);
    }
    const raw = join(work, `${name}.raw`);
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', root, raw, '64M']);
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, join(home, 'instances', name, 'disk0.qcow2')]);
    rmSync(raw);
  };

  beforeAll(async () => {
    await makeUsedInstance('src');
  }, 120_000);

  afterAll(() => {
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('a full clone is an independent copy, sealed offline, with an identity of its own that the guest sees', async () => {
    const r = await ok(['clone', 'src', 'full1', '--format', 'json']);
    const clone = JSON.parse(r.stdout) as InstanceJson;
    const source = await info('src');
    expect(clone.clone).toMatchObject({ from: 'instance', mode: 'full' });
    expect(clone.clone!.seal).toMatchObject({ method: 'offline', root: '/dev/vda ext4' });
    expect(clone.uuid).not.toBe(source.uuid);
    expect(clone.smbiosUuid).not.toBe(source.smbiosUuid);
    expect(clone.nics[0]!.mac).not.toBe(source.nics[0]!.mac);
    expect(clone.instanceId).toMatch(/^i-[0-9a-f-]{36}$/);
    const disk = clone.disks.find((d) => d.id === 'disk0')!.path;
    expect(backing(disk)).toBeUndefined();
    expect(clone.disks.map((d) => d.id)).toEqual(['disk0', 'seed']);

    // Sealed: the clone's disk has none of the source's identity, and keeps the customization; the source is untouched.
    expect(readGuestFile(disk, 'etc/machine-id')).toBe('');
    for (const gone of ['var/lib/dbus/machine-id', 'etc/ssh/ssh_host_ed25519_key', 'etc/ssh/ssh_host_ed25519_key.pub', 'var/lib/cloud/instances/i-old/obj.pkl', 'var/lib/cloud/data/instance-id', 'var/lib/cloud/sem/config_x', 'var/lib/dhcp/dhclient.eth0.leases', 'etc/udev/rules.d/70-persistent-net.rules', 'var/log/journal/abc/system.journal', 'root/.bash_history', 'home/ada/.bash_history', 'tmp/junk']) {
      expect(readGuestFile(disk, gone), gone).toBeUndefined();
    }
    expect(readGuestFile(disk, 'var/log/syslog')).toBe('');
    expect(readGuestFile(disk, 'srv/customization.txt')).toBe('kept\n');
    expect(readGuestFile(disk, 'etc/ssh/sshd_config')).toBe('PermitRootLogin no\n');
    const sourceDisk = source.disks[0]!.path;
    expect(readGuestFile(sourceDisk, 'etc/machine-id')).toBe(IDENTITY_FILES['etc/machine-id']);
    expect(readGuestFile(sourceDisk, 'etc/ssh/ssh_host_ed25519_key')).toBe('PRIVATE\n');

    await ok(['start', 'src']);
    await ok(['start', 'full1']);
    const [srcLog, cloneLog] = await Promise.all([waitForText(consoleLog('src'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS), waitForText(consoleLog('full1'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS)]);
    expect(cloneLog).toContain(`uuid=${clone.smbiosUuid}`);
    expect(cloneLog).toContain(`macs=${clone.nics[0]!.mac}`);
    expect(srcLog).toContain(`uuid=${source.smbiosUuid}`);
    expect(srcLog).toContain(`macs=${source.nics[0]!.mac}`);
  }, 240_000);

  it('a running instance is never cloned: refused with a hint, nothing made', async () => {
    expect((await info('src')).state).toBe('running');
    const r = await virtnode(home, ['clone', 'src', 'hot']);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('cannot clone instance src: it is running');
    expect(r.stderr).toContain('hint: a disk in use is never copied: stop it first (virtnode stop src), or make it a template');
    const linked = await virtnode(home, ['clone', 'src', 'hot', '--linked']);
    expect(linked.code).toBe(5);
    expect(await names()).not.toContain('hot');
    expect(existsSync(join(home, 'instances', 'hot'))).toBe(false);
    await ok(['stop', '--force', 'src']);
    await ok(['stop', '--force', 'full1']);
  });

  it('an instance with internal snapshots is neither linked-cloned nor made a template: refused with a hint, nothing made', async () => {
    expect((await info('src')).state).toBe('stopped');
    await ok(['snapshot', 'create', 'src', 'before']);
    for (const args of [['clone', 'src', 'snapped', '--linked'], ['template', 'create', 'src', 'snapped']]) {
      const r = await virtnode(home, args);
      expect(r.code, args.join(' ')).toBe(5);
      expect(r.stderr).toMatch(/cannot make (a linked clone|a template) of src: it has snapshots \(before\)/);
      expect(r.stderr).toContain('hint: delete them first (virtnode snapshot rm src SNAP');
    }
    expect(await names()).not.toContain('snapped');
    expect((await info('src')).state).toBe('stopped');
    await ok(['snapshot', 'rm', 'src', 'before']);
  });

  it('a linked clone of a stopped instance: its disk becomes a read-only base under both, and both boot at once', async () => {
    const before = (await info('src')).disks[0]!.path;
    const r = await ok(['clone', 'src', 'linked1', '--linked', '--format', 'json']);
    const clone = JSON.parse(r.stdout) as InstanceJson;
    expect(clone.clone).toMatchObject({ from: 'instance', mode: 'linked' });
    const base = clone.clone!.base!;
    expect(base.startsWith(join(home, 'bases') + '/')).toBe(true);
    expect(statSync(base).mode & 0o777).toBe(0o444);
    const cloneDisk = clone.disks[0]!.path;
    expect(backing(cloneDisk)).toBe(base);
    expect(backing(before)).toBe(base); // the source now writes only its own new overlay
    // The clone's overlay is sealed; the base (the source's old disk) is not touched.
    expect(readGuestFile(cloneDisk, 'etc/machine-id')).toBe('');
    expect(readGuestFile(base, 'etc/machine-id')).toBe(IDENTITY_FILES['etc/machine-id']);
    const baseSum = sha256(base);
    await ok(['start', 'src']);
    await ok(['start', 'linked1']);
    const log = await waitForText(consoleLog('linked1'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS);
    expect(log).toContain(`uuid=${clone.smbiosUuid}`);
    expect(log).toContain(`macs=${clone.nics[0]!.mac}`);
    await ok(['stop', '--force', 'src']);
    await ok(['stop', '--force', 'linked1']);
    expect(sha256(base)).toBe(baseSum);
  }, 240_000);

  it('template create seals offline and removes the instance; a template never starts; linked clones of it differ and leave its disk unchanged', async () => {
    await makeUsedInstance('tsrc');
    const made = await ok(['template', 'create', 'tsrc', 'golden']);
    expect(made.stdout).toMatch(/^Template golden made of tsrc; sealed offline \(sealing appliance, root \/dev\/vda ext4\): \d+ changes$/m);
    expect(await names()).not.toContain('tsrc');
    const t = JSON.parse((await ok(['template', 'info', 'golden', '--format', 'json'])).stdout) as { disk: string; sha256: string; sealMethod: string; sealReport: string[] };
    expect(t.sealMethod).toBe('offline');
    expect(t.sealReport).toContain('removed /etc/ssh/ssh_host_ed25519_key');
    expect(statSync(t.disk).mode & 0o777).toBe(0o444);
    expect(sha256(t.disk)).toBe(t.sha256);
    expect(readGuestFile(t.disk, 'etc/machine-id')).toBe('');
    expect(readGuestFile(t.disk, 'srv/customization.txt')).toBe('kept\n');

    const start = await virtnode(home, ['start', 'golden']);
    expect(start.code).toBe(5);
    expect(start.stderr).toContain('golden is a template: a template never starts');
    expect(start.stderr).toContain('hint: make an instance of it: virtnode launch golden, or virtnode clone golden NEW --linked');
    const ls = await ok(['template', 'ls']);
    expect(ls.stdout).toMatch(/^golden\s+tsrc\s+64 MiB\s+offline\s+0\s/m);

    const clones = await Promise.all(['g1', 'g2'].map(async (n) => JSON.parse((await ok(['clone', 'golden', n, '--linked', '--start', '--format', 'json'])).stdout) as InstanceJson));
    for (const c of clones) {
      expect(c.clone).toMatchObject({ from: 'template', mode: 'linked', seal: null });
      expect(backing(c.disks[0]!.path)).toBe(t.disk);
    }
    const [a, b] = clones as [InstanceJson, InstanceJson];
    expect(a.uuid).not.toBe(b.uuid);
    expect(a.smbiosUuid).not.toBe(b.smbiosUuid);
    expect(a.nics[0]!.mac).not.toBe(b.nics[0]!.mac);
    expect(a.instanceId).not.toBe(b.instanceId);
    const logs = await Promise.all(['g1', 'g2'].map((n) => waitForText(consoleLog(n), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS)));
    logs.forEach((log, i) => {
      expect(log).toContain(`uuid=${clones[i]!.smbiosUuid}`);
      expect(log).toContain(`macs=${clones[i]!.nics[0]!.mac}`);
    });
    // launch TEMPLATE boots what the template's instance booted (here a kernel on the host), on an overlay of its disk.
    await ok(['launch', 'golden', '--name', 'gl', '--memory', '128M', '--seed', 'http', '--no-wait']);
    const gl = await info('gl');
    expect(gl.boot).toMatchObject({ kernel: guest.kernel, initrd: guest.initrd });
    expect(backing(gl.disks[0]!.path)).toBe(t.disk);
    expect(await waitForText(consoleLog('gl'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS)).toContain(`uuid=${gl.smbiosUuid}`);
    await ok(['delete', '--force', 'gl']);

    // A full clone of a template is not sealed again (it is sealed already).
    const full = JSON.parse((await ok(['clone', 'golden', 'gfull', '--format', 'json'])).stdout) as InstanceJson;
    expect(full.clone).toMatchObject({ from: 'template', mode: 'full', seal: null });
    expect(backing(full.disks[0]!.path)).toBeUndefined();

    const rm = await virtnode(home, ['template', 'rm', 'golden']);
    expect(rm.code).toBe(4);
    expect(rm.stderr).toContain('template golden is the base of 2 instances: g1, g2');
    expect(rm.stderr).toContain('hint: their disks are overlays on it: delete them first');
    expect(existsSync(t.disk)).toBe(true);

    for (const n of ['g1', 'g2']) await ok(['delete', '--force', n]);
    const verify = await ok(['template', 'info', 'golden', '--verify', '--format', 'json']);
    expect(JSON.parse(verify.stdout)).toMatchObject({ verified: { sha256: t.sha256, unchanged: true } });
    expect(sha256(t.disk)).toBe(t.sha256);
    await ok(['template', 'rm', 'golden']);
    expect(existsSync(join(home, 'templates', 'golden'))).toBe(false);
    expect((await virtnode(home, ['template', 'info', 'golden'])).code).toBe(3);
    await ok(['delete', 'gfull']);
  }, 300_000);

  it.each(['clone.after-disk', 'clone.after-base'])('kill -9 of virtnode at %s leaves no half instance and no stray base', async (point) => {
    const basesBefore = existsSync(join(home, 'bases')) ? readdirSync(join(home, 'bases')).sort() : [];
    const crashed = await virtnode(home, ['clone', 'src', 'half', '--linked'], { env: { VIRTNODE_FAILPOINT: point } });
    expect(crashed.signal).toBe('SIGKILL');
    expect(await names()).not.toContain('half'); // the next command repairs it
    expect(existsSync(join(home, 'instances', 'half'))).toBe(false);
    if (point === 'clone.after-base') expect(readdirSync(join(home, 'bases')).sort()).toEqual(basesBefore);
    expect((await info('src')).state).toBe('stopped');
    await ok(['clone', 'src', 'half', '--linked']); // the name is free again
    await ok(['delete', 'half']);
  }, 120_000);

  it.each(['template.after-link', 'template.after-record'])('kill -9 of virtnode at %s: the instance or the template, never half of both', async (point) => {
    await ok(['create', 'tcrash', '--disk-size', '16M', ...bootArgs]);
    const crashed = await virtnode(home, ['template', 'create', 'tcrash', 'tcrashed'], { env: { VIRTNODE_FAILPOINT: point } });
    expect(crashed.signal).toBe('SIGKILL');
    const after = await names();
    const templates = JSON.parse((await ok(['template', 'ls', '--format', 'json'])).stdout) as Array<{ name: string }>;
    if (point === 'template.after-link') {
      expect(after).toContain('tcrash');
      expect(templates.map((t) => t.name)).not.toContain('tcrashed');
      expect(existsSync(join(home, 'templates', 'tcrashed'))).toBe(false);
      await ok(['delete', 'tcrash']);
    } else {
      expect(after).not.toContain('tcrash');
      expect(existsSync(join(home, 'instances', 'tcrash'))).toBe(false);
      expect(templates.map((t) => t.name)).toContain('tcrashed');
      await ok(['template', 'rm', 'tcrashed']);
    }
  }, 120_000);

  it('deleting the last instance on a base removes the base', async () => {
    for (const n of ['linked1', 'full1']) await ok(['delete', n]);
    await ok(['delete', 'src']);
    await names(); // any next command collects unused bases
    expect(readdirSync(join(home, 'bases'))).toEqual([]);
    expect(qemuPidsUnder(home)).toEqual([]);
  });

  it('a disk on external snapshots in its instance directory never becomes a base or a template (those files go with the instance)', async () => {
    await ok(['create', 'snapped', '--disk-size', '16M', ...bootArgs]);
    await ok(['snapshot', 'create', 'snapped', 's1', '--external']);
    const linked = await virtnode(home, ['clone', 'snapped', 'snapped-l', '--linked']);
    expect(linked.code).toBe(2);
    expect(linked.stderr).toContain('--linked: the disk of snapped sits on external snapshots in its own directory');
    const templ = await virtnode(home, ['template', 'create', 'snapped']);
    expect(templ.code).toBe(2);
    expect(templ.stderr).toContain('hint: delete (merge) its snapshots first');
    expect(await names()).not.toContain('snapped-l');
    // A full copy flattens the chain, so it is allowed.
    const full = JSON.parse((await ok(['clone', 'snapped', 'snapped-f', '--format', 'json'])).stdout) as InstanceJson;
    expect(backing(full.disks[0]!.path)).toBeUndefined();
    await ok(['delete', 'snapped-f']);
    await ok(['delete', 'snapped']);
  }, 120_000);

  it('bad input is refused and changes nothing', async () => {
    await ok(['create', 'bad-src', '--disk-size', '16M', ...bootArgs]);
    // Compared with what is there now, not with a fixed list: an earlier test's failure must not fail this one too.
    const namesBefore = (await names()).sort();
    const dirsBefore = readdirSync(join(home, 'instances')).sort();
    const cases: Array<[string[], number, string]> = [
      [['clone', 'nosuch', 'x'], 3, 'SRC: there is no instance or template named nosuch'],
      [['clone', 'bad-src', 'Bad_Name'], 2, 'NEW: "Bad_Name" is not a valid name'],
      [['clone', 'bad-src', 'bad-src'], 2, `NEW: "bad-src" is the source's own name`],
      [['clone', '../etc', 'x'], 2, 'SRC: "../etc" is not a valid name'],
      [['template', 'create', 'nosuch'], 3, 'instance nosuch does not exist'],
      [['template', 'rm', 'nosuch'], 3, 'template nosuch does not exist'],
      [['template', 'info', 'nosuch'], 3, 'template nosuch does not exist'],
      [['clone', 'bad-src', 'x', '--format', 'xml'], 2, '--format: "xml" is not valid'],
    ];
    for (const [args, code, message] of cases) {
      const r = await virtnode(home, args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toContain(message);
    }
    await ok(['create', 'other', '--disk-size', '16M', ...bootArgs]);
    const taken = await virtnode(home, ['clone', 'bad-src', 'other']);
    expect(taken.code).toBe(4);
    expect(taken.stderr).toContain('NEW: other already exists');
    const asInstance = await virtnode(home, ['template', 'create', 'bad-src', 'other']);
    expect(asInstance.code).toBe(4);
    expect(asInstance.stderr).toContain('NAME: other is the name of an instance');
    await ok(['template', 'create', 'other', 'tname']);
    const instanceNamedLikeTemplate = await virtnode(home, ['create', 'tname', '--disk-size', '16M']);
    expect(instanceNamedLikeTemplate.code).toBe(4);
    expect(instanceNamedLikeTemplate.stderr).toContain('tname is the name of a template');
    expect((await names()).sort()).toEqual(namesBefore);
    expect(readdirSync(join(home, 'instances')).sort()).toEqual(dirsBefore);
    expect(namesBefore).toContain('bad-src');
    await ok(['template', 'rm', 'tname']);
    await ok(['delete', 'bad-src']);
  }, 120_000);
});
