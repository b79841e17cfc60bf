/**
 * Containers from the real Debian image through the same verbs as VMs: snapshots (a frozen copy of the upper
 * directory, reverted live), port forwards (DNAT to the container's address), live NIC attach/detach (a veth
 * moved in), the shared console (lxc-console), volumes refused, and a template whose three clones never share an
 * identity (machine-id, host keys, hostname, MAC, address). Delete leaves nothing of this file's own.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { type ContainerFootprint, containerFootprint } from '../helpers/container-footprint.ts';
import { debianImage } from '../helpers/debian-image.ts';
import { freeLoopbackPort } from '../../src/lib/ports.ts';

const LAUNCH_TIMEOUT_MS = 600_000;
const CLONES = ['cl-1', 'cl-2', 'cl-3'];
const NAMES = ['cl-base', ...CLONES];

interface InfoJson {
  name: string;
  state: string;
  nics: Array<{ index: number; mac: string; network: string; address?: string }>;
  ssh: { user: string; address: string; hostKeyFingerprints: string[] };
  instanceId: string;
}

describe('container snapshots, port forwards, NICs, console, templates and clones', { timeout: 900_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-lxcclone-');
  let before: ContainerFootprint;
  let uuids: Record<string, string> = {};

  const run = async (args: string[], code = 0, timeoutMs = 300_000) => {
    const r = await virtnode(home, args, { timeoutMs });
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(code);
    return r;
  };
  const inside = async (name: string, script: string) => {
    const r = await virtnode(home, ['exec', name, '--', 'sh', '-c', script], { timeoutMs: 300_000 });
    return { code: r.code, out: `${r.stdout}${r.stderr}` };
  };
  const getInfo = async (name: string) => JSON.parse((await run(['info', name, '--format', 'json'])).stdout) as InfoJson;
  const nftTables = () => execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' });
  const pfTable = (uuid: string) => `virtnode_pf_${uuid.replace(/-/g, '').slice(0, 16)}`;

  beforeAll(async () => {
    before = containerFootprint(home, NAMES);
    await run(['image', 'import', debianImage(), '--name', 'debian-12'], 0, 300_000);
    await run(['launch', 'debian-12', '--container', '--name', 'cl-base', '--memory', '256M', '--timeout', '500'], 0, LAUNCH_TIMEOUT_MS);
  }, LAUNCH_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    for (const name of NAMES) await virtnode(home, ['delete', '--force', name]).catch(() => {});
    await virtnode(home, ['template', 'rm', 'cl-tmpl']).catch(() => {});
    await virtnode(home, ['network', 'rm', 'default']).catch(() => {});
    for (const name of NAMES) {
      try {
        execFileSync('lxc-stop', ['-P', join(home, 'instances'), '-n', name, '-k'], { stdio: 'ignore' });
      } catch {
        // not running
      }
    }
    cleanup();
  });

  it('snapshots a running container (frozen while copied) and reverts it, running again', async () => {
    await inside('cl-base', 'echo before > /root/state');
    const snap = await run(['snapshot', 'create', 'cl-base', 's1']);
    expect(snap.stdout + snap.stderr).toContain('frozen');
    expect((await getInfo('cl-base')).state).toBe('running');
    await inside('cl-base', 'echo after > /root/state; touch /root/new-file');
    const refused = await virtnode(home, ['snapshot', 'create', 'cl-base', 's2', '--disk-only']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('--disk-only');
    expect((await run(['snapshot', 'ls', 'cl-base'])).stdout).toContain('s1');
    await run(['snapshot', 'revert', 'cl-base', 's1']);
    expect((await getInfo('cl-base')).state).toBe('running');
    const back = await inside('cl-base', 'cat /root/state; test -e /root/new-file && echo still-there || echo gone');
    expect(back.out).toBe('before\ngone\n');
    await run(['snapshot', 'rm', 'cl-base', 's1']);
    expect(existsSync(join(home, 'instances', 'cl-base', 'snapshots', 's1'))).toBe(false);
  });

  it('forwards a host port to the container (DNAT in its own table), live, and removes it', async () => {
    // The revert above restarted it: wait for its SSH server, which the forward goes to.
    const up = await inside('cl-base', 'timeout 120 sh -c "until systemctl is-active -q ssh; do sleep 0.5; done"; systemctl is-active ssh');
    expect(up.out).toContain('active');
    const port = await freeLoopbackPort();
    const info = await getInfo('cl-base');
    uuids['cl-base'] = (JSON.parse((await run(['info', 'cl-base', '--format', 'json'])).stdout) as { uuid: string }).uuid;
    await run(['port', 'add', 'cl-base', `${port}:22`]);
    expect(nftTables()).toContain(pfTable(uuids['cl-base']!));
    const banner = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.setTimeout(20_000, () => reject(new Error('no banner')));
      socket.once('data', (d) => {
        socket.destroy();
        resolve(d.toString());
      });
      socket.once('error', reject);
    });
    expect(banner).toMatch(/^SSH-2\.0-OpenSSH/);
    expect(info.nics[0]!.address).toBeDefined();
    await run(['port', 'rm', 'cl-base', String(port)]);
    expect(nftTables()).not.toContain(pfTable(uuids['cl-base']!));
  });

  it('attaches and detaches a NIC on the running container (a veth moved in as eth1)', async () => {
    await run(['nic', 'attach', 'cl-base', 'default']);
    const nics = (await getInfo('cl-base')).nics;
    expect(nics).toHaveLength(2);
    const added = await inside('cl-base', 'cat /sys/class/net/eth1/address');
    expect(added.out.trim()).toBe(nics[1]!.mac);
    await run(['nic', 'detach', 'cl-base', '1']);
    const gone = await inside('cl-base', 'test -e /sys/class/net/eth1 && echo there || echo gone');
    expect(gone.out.trim()).toBe('gone');
    expect((await getInfo('cl-base')).nics).toHaveLength(1);
  });

  it('refuses volumes, naming what containers do not have', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(home, 'pool'));
    await run(['pool', 'create', 'p1', '--path', join(home, 'pool')]);
    await run(['volume', 'create', 'v1', '--pool', 'p1', '--size', '16M']);
    const r = await virtnode(home, ['disk', 'attach', 'cl-base', 'v1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('it is a container, which has no block devices');
    await run(['volume', 'rm', 'v1']);
    await run(['pool', 'rm', 'p1']);
  });

  it('gives the shared console: input reaches the getty, its answer comes back', async () => {
    const r = await virtnode(home, ['console', 'cl-base'], { input: '\n', timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/cl-base login:/);
  });

  it('makes a template of it, and three clones that share no identity', async () => {
    const made = await run(['template', 'create', 'cl-base', 'cl-tmpl']);
    expect(made.stdout + made.stderr).toMatch(/identity/);
    expect(existsSync(join(home, 'instances', 'cl-base'))).toBe(false);
    const verified = await run(['template', 'info', 'cl-tmpl', '--verify']);
    expect(verified.stdout).toMatch(/unchanged|ok/i);
    for (const name of CLONES) await run(['clone', 'cl-tmpl', name]);
    await Promise.all(CLONES.map((name) => run(['start', name], 0, 300_000)));
    const ids = await Promise.all(
      CLONES.map(async (name) => {
        const r = await inside(name, 'cloud-init status --wait >/dev/null; cat /etc/machine-id; hostname; ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d" " -f2; cat /root/state');
        expect(r.code, r.out).toBe(0);
        const [machineId, hostname, hostKey, state] = r.out.trim().split('\n');
        const info = await getInfo(name);
        return { machineId, hostname, hostKey, state, mac: info.nics[0]!.mac, address: info.nics[0]!.address };
      }),
    );
    for (const [k, id] of ids.entries()) {
      expect(id.hostname).toBe(CLONES[k]);
      expect(id.machineId).toMatch(/^[0-9a-f]{32}$/);
      expect(id.state).toBe('before'); // the template's files came along
    }
    for (const field of ['machineId', 'hostname', 'hostKey', 'mac', 'address'] as const) {
      expect(new Set(ids.map((i) => i[field])).size, field).toBe(3);
    }
    // Each clone's host key is the one virtnode injected: strict SSH works.
    const c1 = await getInfo('cl-1');
    const out = execFileSync('ssh', ['-i', join(home, 'ssh', 'id_ed25519'), '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${join(home, 'ssh', 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=20', '-o', 'BatchMode=yes', `${c1.ssh.user}@${c1.nics[0]!.address}`, 'hostname'], { encoding: 'utf8', timeout: 60_000 });
    expect(out).toBe('cl-1\n');
  });

  it('clones a stopped container, and deletes everything without a trace', async () => {
    await run(['stop', 'cl-3', '--force']);
    const r = await run(['clone', 'cl-3', 'cl-4']);
    expect(r.stdout + r.stderr).toMatch(/seal|identity|removed/);
    await run(['delete', 'cl-4']);
    for (const name of CLONES) await run(['delete', '--force', name], 0, 120_000);
    await run(['template', 'rm', 'cl-tmpl']);
    await run(['network', 'rm', 'default']);
    for (const name of NAMES) expect(existsSync(join(home, 'instances', name))).toBe(false);
    expect(existsSync(join(home, 'templates', 'cl-tmpl'))).toBe(false);
    expect(containerFootprint(home, NAMES)).toEqual(before);
    expect(nftTables()).not.toContain(pfTable(uuids['cl-base']!));
  });
});
