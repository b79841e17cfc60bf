/**
 * End to end on the Debian image: managed networks with real cloud-init, dhclient and dnsmasq. Two guests boot at
 * once: `a` (DHCP on a NAT network; later a hot-added NIC on the isolated one) and `b` (static --ip on the NAT
 * network, DHCP on an isolated one). "The outside" is a namespace of the test's own behind a veth pair. That an
 * isolated network has no way out whatever a guest tries is the tiny-guest tier's test (network-tiny); here, on
 * real cloud-init and dhclient, that its DHCP gives an address and no route out.
 */
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../../src/lib/ports.ts';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { debianImage } from '../helpers/debian-image.ts';
import { createOutside, networkLeftovers, type Outside } from '../helpers/outside-ns.ts';

const LAUNCH_TIMEOUT_MS = 900_000;
// Addresses of this file only (test files share one network namespace).
const LAB = '10.95.0.0/24';
const QUIET = '10.95.1.0/24';

interface NicJson {
  index: number;
  mac: string;
  network: string;
  address?: string;
  lease?: string;
  guestAddresses?: string[];
}
interface InfoJson {
  name: string;
  nics: NicJson[];
  ssh: { address: string };
}

describe('managed networks on the real Debian image', { timeout: 300_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-e2e-net-');
  const networkIds: string[] = [];
  let outside: Outside;

  const run = async (args: string[], code = 0, timeoutMs?: number) => {
    const r = await virtnode(home, args, timeoutMs === undefined ? {} : { timeoutMs });
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(code);
    return r;
  };
  /** A command in the guest over verified SSH; returns exit status and output (stdout + stderr). */
  const inGuest = async (name: string, script: string) => {
    const r = await virtnode(home, ['exec', name, '--', 'sh', '-c', script], { timeoutMs: 120_000 });
    return { code: r.code, out: `${r.stdout}${r.stderr}` };
  };
  const info = async (name: string) => JSON.parse((await run(['info', name, '--format', 'json'])).stdout) as InfoJson;
  const fetchOutside = (name: string) =>
    inGuest(name, `python3 -c "import urllib.request; print(urllib.request.urlopen('http://${outside.address}:${outside.port}/', timeout=10).read().decode())"`);
  /** Reaches a peer's SSH port by name or address (the image has no ping): resolves, routes, answers. */
  const reachSsh = (name: string, host: string) => inGuest(name, `timeout 10 bash -c 'exec 3<>/dev/tcp/${host}/22; head -c 7 <&3'`);
  const ifaceOf = async (name: string, mac: string) => {
    const r = await inGuest(name, `ip -o link | grep -i '${mac}' | cut -d: -f2`);
    return r.out.trim();
  };

  beforeAll(async () => {
    const image = debianImage();
    outside = await createOutside({ hostAddress: '10.94.0.1', outsideAddress: '10.94.0.2', prefix: 24 });
    // A way back to the guests' subnets, so only virtnode's rules decide what an isolated guest reaches.
    execFileSync('ip', ['-n', outside.netns, 'route', 'add', '10.95.0.0/16', 'via', '10.94.0.1']);
    await run(['image', 'import', image, '--name', 'debian-12'], 0, 300_000);
    await run(['network', 'create', 'lab', '--subnet', LAB, '--dhcp-range', '10.95.0.100-10.95.0.150', '--domain', 'lab.test']);
    await run(['network', 'create', 'quiet', '--isolated', '--subnet', QUIET]);
    for (const n of ['lab', 'quiet']) networkIds.push((JSON.parse((await run(['network', 'info', n, '--format', 'json'])).stdout) as { id: string }).id);
    const common = ['debian-12', '--memory', '768M', '--cpus', '1', '--timeout', String(LAUNCH_TIMEOUT_MS / 1000)];
    const launched = await Promise.all([
      virtnode(home, ['launch', ...common, '--name', 'a', '--network', 'lab'], { timeoutMs: LAUNCH_TIMEOUT_MS + 60_000 }),
      virtnode(home, ['launch', ...common, '--name', 'b', '--network', 'lab', '--ip', '10.95.0.10', '--network', 'quiet'], { timeoutMs: LAUNCH_TIMEOUT_MS + 60_000 }),
    ]);
    for (const r of launched) expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  }, LAUNCH_TIMEOUT_MS + 600_000);

  afterAll(async () => {
    for (const name of ['a', 'b']) await virtnode(home, ['delete', '--force', name]).catch(() => {});
    for (const name of ['lab', 'quiet']) await virtnode(home, ['network', 'rm', name]).catch(() => {});
    outside?.remove();
    cleanup();
  });

  it('NAT: DHCP from the declared range, static --ip honored, names resolve, peers reach each other, the outside through NAT', async () => {
    const a = await info('a');
    const aLab = a.nics.find((n) => n.network === 'lab')!;
    const aIface = await ifaceOf('a', aLab.mac);
    const aAddr = (await inGuest('a', `ip -4 -o addr show ${aIface} | awk '{print $4}'`)).out.trim();
    expect(aAddr).toMatch(/^10\.95\.0\.(1[0-4]\d|150)\/24$/);
    expect(aAddr.split('/')[0]).toBe(aLab.address);
    const leases = JSON.parse((await run(['network', 'leases', 'lab', '--format', 'json'])).stdout) as Array<{ instance?: string; address: string }>;
    expect(leases.find((l) => l.instance === 'a')?.address).toBe(aLab.address);

    const b = await info('b');
    const bLab = b.nics.find((n) => n.network === 'lab')!;
    const bIface = await ifaceOf('b', bLab.mac);
    expect((await inGuest('b', `ip -4 -o addr show ${bIface}`)).out).toContain('inet 10.95.0.10/24');

    // Names: from a guest (dnsmasq on the gateway, learned through DHCP) and from the host.
    const resolved = await inGuest('a', 'getent hosts b.lab.test');
    expect(resolved.out).toContain('10.95.0.10');
    expect((await reachSsh('a', 'b.lab.test')).out).toContain('SSH-2.0');
    // b's static NIC: routed, but Debian's ifupdown without resolvconf ignores dns-nameservers, so by address.
    expect((await reachSsh('b', aLab.address!)).out).toContain('SSH-2.0');
    const { Resolver } = await import('node:dns/promises');
    const resolver = new Resolver();
    resolver.setServers(['10.95.0.1']);
    expect(await resolver.resolve4('a.lab.test')).toEqual([aLab.address]);

    for (const name of ['a', 'b']) {
      const got = await fetchOutside(name);
      expect(got.out, `${name} reaches the outside`).toContain(outside.body);
    }
    // list shows the addresses too (leases; the guest agent in info).
    expect((await run(['list'])).stdout).toMatch(new RegExp(`^a .*${aLab.address!.replaceAll('.', '\\.')}`, 'm'));
    expect((await info('a')).nics.find((n) => n.network === 'lab')?.guestAddresses).toContain(`${aLab.address}/24`);
  });

  it('a hot-added NIC gets its address from our dnsmasq', async () => {
    const attached = await run(['nic', 'attach', 'a', 'quiet']);
    const reserved = /address (10\.95\.1\.\d+)/.exec(attached.stdout)?.[1];
    expect(reserved).toBeDefined();
    const nic = (await info('a')).nics.find((n) => n.network === 'quiet')!;
    let iface = '';
    for (let i = 0; i < 30 && iface === ''; i++) {
      iface = await ifaceOf('a', nic.mac);
      if (iface === '') await new Promise((r) => setTimeout(r, 1_000));
    }
    expect(iface).toMatch(/^eth\d$/);
    // cloud-init configured the NICs present at first boot only: bring this one up by hand.
    const dhcp = await inGuest('a', `sudo -n dhclient -1 -v ${iface} 2>&1; ip -4 -o addr show ${iface}`);
    expect(dhcp.out).toContain(`inet ${reserved}/24`);
    const leases = JSON.parse((await run(['network', 'leases', 'quiet', '--format', 'json'])).stdout) as Array<{ instance?: string; address: string; mac: string }>;
    expect(leases).toContainEqual(expect.objectContaining({ instance: 'a', address: reserved, mac: nic.mac }));
  });

  it('isolated: DHCP gives an address and no route out; the peer on it answers there', async () => {
    const b = await info('b');
    const bQuiet = b.nics.find((n) => n.network === 'quiet')!;
    expect(bQuiet.address).toMatch(/^10\.95\.1\./);
    const bIface = await ifaceOf('b', bQuiet.mac);
    expect((await inGuest('b', `ip -4 -o addr show ${bIface}`)).out).toContain(`inet ${bQuiet.address}/24`);
    // No router in the isolated network's DHCP answer: b's only way out stays its NAT NIC.
    const routes = (await inGuest('b', 'ip route')).out;
    expect(routes).toMatch(/^default via 10\.95\.0\.1 /m);
    expect(routes).not.toContain('via 10.95.1.1');
    // a's hot-added NIC (previous test) is on the same isolated network.
    expect((await reachSsh('a', bQuiet.address!)).out).toContain('SSH-2.0');
  });

  it("user-mode port forwarding reaches the guest's SSH; the SSH forward of another instance is refused", async () => {
    const port = await freeLoopbackPort();
    await run(['port', 'add', 'a', `${port}:22`]);
    const banner = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let data = '';
      socket.setTimeout(15_000, () => socket.destroy());
      socket.on('data', (d) => {
        data += d.toString();
        if (data.includes('\n')) socket.destroy();
      });
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve(data));
    });
    expect(banner).toMatch(/^SSH-2\.0-OpenSSH/);
    const bSsh = Number((await info('b')).ssh.address.split(':')[1]);
    const clash = await run(['port', 'add', 'a', `${bSsh}:22`], 4);
    expect(clash.stderr).toContain(`127.0.0.1:${bSsh}/tcp is the SSH forward of instance b`);
    await run(['port', 'rm', 'a', String(port)]);
  });

  it('after deleting the instances and removing the networks nothing of virtnode remains', async () => {
    for (const name of ['a', 'b']) await run(['delete', '--force', name]);
    await run(['network', 'rm', 'lab']);
    await run(['network', 'rm', 'quiet']);
    expect(networkLeftovers(home, networkIds)).toEqual({ links: [], nftTables: [], dnsmasq: [] });
    expect((await run(['network', 'ls', '--format', 'json'])).stdout.trim()).toBe('[]');
  });
});
