/**
 * The identity acceptance test, on the real Debian image: customize an instance, make it a template, launch three
 * linked clones of it at once on one managed NAT network; they boot, carry the customization, and share no
 * identity: machine-id, SSH host keys, MACs, IP addresses, DHCP client identities, hostnames, instance-ids. The
 * template's disk is unchanged (sha256 before and after).
 *
 * Sealing both ways, on the same boots: the running source is sealed through qemu-guest-agent, a second one,
 * stopped, offline in the sealing appliance. Each template's disk is then read offline (debugfs on its flattened
 * raw form): no identity left, the customization kept.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { DEBIAN_IMAGE_PARTITION_OFFSET_BYTES, debianImage } from '../helpers/debian-image.ts';

const LAUNCH_TIMEOUT_MS = 900_000;
const CLONES = ['clone-a', 'clone-b', 'clone-c'] as const;
// Unique to this test file (test files share one network namespace).
const NETWORK = 'tmplnet';
const SUBNET = '10.96.0.0/24';

interface Info {
  name: string;
  instanceId: string;
  nics: Array<{ mac: string; network: string; address?: string }>;
  disks: Array<{ id: string; path: string }>;
  ssh: { hostKeyFingerprints: string[] };
}

interface Observed {
  info: Info;
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

describe('templates sealed live and offline; three linked clones of one share no identity', () => {
  const { home, cleanup } = tempHome('virtnode-e2e-identity-');
  const work = mkdtempSync(join(tmpdir(), 'virtnode-e2e-seal-work-'));
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
  const vexec = async (name: string, ...command: string[]) => (await ok(['exec', name, '--', ...command])).trim();
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
    await ok(['image', 'import', debianImage(), '--name', 'debian-12']);
    await ok(['network', 'create', NETWORK, '--nat', '--subnet', SUBNET]);
    const sources = { 'golden-src': 'golden', 'offline-src': 'offline' } as const;
    const launchedSources = await Promise.all(Object.keys(sources).map((name) => virtnode(home, ['launch', 'debian-12', '--name', name, '--memory', '1G'], { timeoutMs: LAUNCH_TIMEOUT_MS })));
    for (const r of launchedSources) expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const machineIds: Record<string, string> = {};
    for (const name of Object.keys(sources)) {
      // A used guest: a customization, shell histories, junk in /tmp, besides what first boot made.
      await vexec(name, 'sh', '-c', 'echo hist > ~/.bash_history && sudo sh -c "echo \'made before the template\' > /etc/virtnode-customization && echo secret > /root/.bash_history && echo junk > /tmp/junk"');
      machineIds[name] = await vexec(name, 'cat', '/etc/machine-id');
      expect(machineIds[name]).toMatch(/^[0-9a-f]{32}$/);
    }
    templateMachineId = machineIds['golden-src']!;
    await ok(['stop', 'offline-src']);
    const made = await Promise.all([ok(['template', 'create', 'golden-src', 'golden']), ok(['template', 'create', 'offline-src', 'offline'])]);
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
      const info = JSON.parse(await ok(['info', name, '--format', 'json'])) as Info;
      observed[name] = {
        info,
        machineId: await vexec(name, 'cat', '/etc/machine-id'),
        hostname: await vexec(name, 'hostname'),
        instanceId: await vexec(name, 'cat', '/run/cloud-init/.instance-id'),
        mac: await vexec(name, 'cat', '/sys/class/net/eth0/address'),
        natMac: await vexec(name, 'cat', '/sys/class/net/eth1/address'),
        natAddress: (await vexec(name, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth1')).split(/\s+/)[3]?.split('/')[0] ?? '',
        // cloud-init writes injected public host keys 0600, hence sudo.
        hostKey: (await vexec(name, 'sudo', '-n', 'ssh-keygen', '-l', '-E', 'sha256', '-f', '/etc/ssh/ssh_host_ed25519_key.pub')).split(' ')[1]!,
        customization: await vexec(name, 'cat', '/etc/virtnode-customization'),
      };
    }
  }, 2 * LAUNCH_TIMEOUT_MS);

  afterAll(async () => {
    for (const name of [...CLONES, 'golden-src', 'offline-src']) await virtnode(home, ['delete', '--force', name]);
    for (const name of ['golden', 'offline']) await virtnode(home, ['template', 'rm', name]);
    await virtnode(home, ['network', 'rm', NETWORK]);
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('a running guest with qemu-guest-agent is sealed through the agent, a stopped one offline; the output says which', () => {
    expect(sealed['golden']!.stdout).toMatch(/^Template golden made of golden-src; sealed through the guest agent \(in the running guest and again at the end of its shutdown\): \d+ changes$/m);
    expect(sealed['offline']!.stdout).toMatch(/^Template offline made of offline-src; sealed offline \(sealing appliance, root \/dev\/vda1 ext4\): \d+ changes$/m);
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
