import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { Resolver } from 'node:dns/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, tempHome, virtnode } from '../helpers/cli.ts';
import { createOutside, networkLeftovers, type Outside } from '../helpers/outside-ns.ts';
import { SerialShell, UDHCPC_SCRIPT_SETUP } from '../helpers/serial-shell.ts';
import { testGuest } from '../helpers/test-guest.ts';
import type { NetworkView } from '../../src/api/schemas.ts';
import { dnsmasqReadableDir } from '../../src/network/dnsmasq-user.ts';

const guest = testGuest();
const bootArgs = ['--memory', '256M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];
const BOOT_TIMEOUT_MS = 90_000;
// Subnets of this file only (test files share one network namespace).
const SUBNET = '10.91.0.0/24';
const ROUTED = '10.92.0.0/24';

/** What `network info --format json` prints: the API's network view. */
type NetworkJson = NetworkView;

describe('managed networks on real QEMU (tiny guest)', { timeout: 300_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-net-');
  const shells: SerialShell[] = [];
  const networkIds: string[] = [];
  let outside: Outside | undefined;
  const run = async (args: string[], expectCode = 0) => {
    const r = await virtnode(home, args);
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stderr}`).toBe(expectCode);
    return r;
  };
  const networkInfo = async (name: string) => JSON.parse((await run(['network', 'info', name, '--format', 'json'])).stdout) as NetworkJson;
  const shellOf = async (name: string) => {
    const shell = await SerialShell.whenReady(join(home, 'instances', name), BOOT_TIMEOUT_MS);
    shells.push(shell);
    return shell;
  };

  beforeAll(async () => {
    execFileSync('ip', ['route', 'add', 'blackhole', ROUTED]);
    outside = await createOutside({ hostAddress: '10.93.0.1', outsideAddress: '10.93.0.2', prefix: 24 });
    // A way back to the guests' subnets, so that only virtnode's isolation (not a missing route) can keep an
    // isolated guest from the outside.
    execFileSync('ip', ['-n', outside.netns, 'route', 'add', '10.91.0.0/16', 'via', '10.93.0.1']);
  });
  afterAll(async () => {
    for (const s of shells) s.close();
    // Leave nothing behind even when a test failed half way: instances, then networks, through virtnode itself.
    for (const name of ['vm1', 'vm2', 'vm4', 'vm5', 'vm6']) await virtnode(home, ['delete', '--force', name]).catch(() => {});
    for (const name of ['lab', 'quiet', 'wayout', 'island']) await virtnode(home, ['network', 'rm', name]).catch(() => {});
    outside?.remove();
    try {
      execFileSync('ip', ['route', 'del', 'blackhole', ROUTED]);
    } catch {
      /* not there */
    }
    cleanup();
  });

  it('refuses bad input with the field named, creating nothing', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['network', 'create', 'bad', '--subnet', '10.91.0.0/33'], 2, /--subnet: "10.91.0.0\/33" is not an IPv4 CIDR/],
      [['network', 'create', 'bad', '--subnet', '10.91.0.7/24'], 2, /--subnet: .* has host bits set/],
      [['network', 'create', 'bad', '--subnet', ROUTED], 4, /--subnet: 10.92.0.0\/24 collides with the host route to 10.92.0.0\/24/],
      [['network', 'create', 'bad', '--subnet', '10.93.0.128/25'], 4, /collides with the host route to 10.93.0.0\/24/],
      [['network', 'create', 'bad', '--subnet', SUBNET, '--dhcp-range', '10.91.1.5-10.91.1.9'], 2, /--dhcp-range: 10.91.1.5 is not a host address of 10.91.0.0\/24/],
      [['network', 'create', 'bad', '--bridge', 'nosuchbr0'], 3, /--bridge: there is no bridge nosuchbr0/],
      [['network', 'create', 'bad', '--bridge', 'way-too-long-bridge'], 2, /--bridge: .* longer than 15 characters/],
      [['network', 'create', 'bad', '--bridge', 'br/0'], 2, /--bridge: .* character interface names cannot have/],
      [['network', 'create', 'Bad_Name'], 2, /name: "Bad_Name" is not a valid name/],
      [['network', 'create', 'bad', '--nat', '--isolated'], 2, /--nat and --isolated exclude each other/],
      [['create', 'vmx', ...bootArgs, '--network', 'nosuchnet'], 3, /network nosuchnet does not exist/],
    ];
    for (const [args, code, message] of cases) {
      const r = await virtnode(home, args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(message);
    }
    expect((await run(['network', 'ls', '--format', 'json'])).stdout.trim()).toBe('[]');
    expect((await run(['list', '--format', 'json'])).stdout.trim()).toBe('[]');
    expect(networkLeftovers(home, [])).toEqual({ links: [], nftTables: [], dnsmasq: [] });
    expect(existsSync(join(home, 'networks', 'bad'))).toBe(false);
  });

  it('NAT network: DHCP lease from the range, DNS by name, the outside through masquerade; isolated: no way out; nothing left after rm', async () => {
    await run(['network', 'create', 'lab', '--subnet', SUBNET, '--dhcp-range', '10.91.0.50-10.91.0.60', '--domain', 'lab.test']);
    const lab = await networkInfo('lab');
    networkIds.push(lab.id);
    expect(lab).toMatchObject({ mode: 'nat', subnet: SUBNET, gateway: '10.91.0.1', dhcpRange: '10.91.0.50-10.91.0.60', domain: 'lab.test', up: true });
    const overlap = await virtnode(home, ['network', 'create', 'again', '--subnet', '10.91.0.0/25']);
    expect(overlap.code).toBe(4);
    expect(overlap.stderr).toMatch(/--subnet: 10.91.0.0\/25 overlaps network lab \(10.91.0.0\/24\)|collides with the host route/);

    await run(['create', 'vm1', ...bootArgs, '--network', 'lab', '--start']);
    await run(['create', 'vm2', ...bootArgs, '--network', 'lab', '--ip', '10.91.0.9', '--start']);
    const taken = await virtnode(home, ['create', 'vm3', ...bootArgs, '--network', 'lab', '--ip', '10.91.0.9']);
    expect(taken.code).toBe(4);
    expect(taken.stderr).toContain('--ip: 10.91.0.9 is already taken on network lab by instance vm2');
    const outsideIp = await virtnode(home, ['create', 'vm3', ...bootArgs, '--network', 'lab', '--ip', '10.92.0.9']);
    expect(outsideIp.code).toBe(2);
    expect(outsideIp.stderr).toContain('--ip: 10.92.0.9 is outside network lab (10.91.0.0/24)');

    const [vm1, vm2] = await Promise.all([shellOf('vm1'), shellOf('vm2')]);
    for (const shell of [vm1, vm2]) {
      await shell.run(UDHCPC_SCRIPT_SETUP);
      const dhcp = await shell.run('ip link set eth0 up && udhcpc -i eth0 -n -q -t 10 -T 3 -s /tmp/udhcpc.sh', 60_000);
      expect(dhcp.status, dhcp.output).toBe(0);
    }
    expect((await vm1.run('ip -4 addr show eth0')).output).toContain('inet 10.91.0.50/24');
    expect((await vm2.run('ip -4 addr show eth0')).output).toContain('inet 10.91.0.9/24');

    const leases = JSON.parse((await run(['network', 'leases', 'lab', '--format', 'json'])).stdout) as Array<{ address: string; instance?: string }>;
    expect(leases.map((l) => [l.instance, l.address]).sort()).toEqual([['vm1', '10.91.0.50'], ['vm2', '10.91.0.9']]);
    const listed = JSON.parse((await run(['list', '--format', 'json'])).stdout) as Array<{ name: string; nics: Array<{ lease?: string }> }>;
    expect(listed.find((i) => i.name === 'vm1')?.nics[0]?.lease).toBe('10.91.0.50');

    // dnsmasq gave up root; it still re-reads the reservations (the isolated NIC below gets its reserved address).
    const dnsmasqPid = readFileSync(join(home, 'networks', 'lab', 'dnsmasq.pid'), 'utf8').trim();
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${dnsmasqPid}/status`, 'utf8'))?.[1];
    expect(uid).toBe(execFileSync('id', ['-u', 'dnsmasq'], { encoding: 'utf8' }).trim());

    // DNS: from the host (the gateway's dnsmasq) and from the other guest.
    const resolver = new Resolver();
    resolver.setServers(['10.91.0.1']);
    expect(await resolver.resolve4('vm2.lab.test')).toEqual(['10.91.0.9']);
    const lookup = await vm1.run('nslookup vm2.lab.test 10.91.0.1');
    expect(lookup.output).toContain('10.91.0.9');
    const ping = await vm1.run('ping -c 1 -W 5 vm2.lab.test');
    expect(ping.status, ping.output).toBe(0);

    // The outside (another namespace behind a veth), through NAT.
    // (busybox nc, not wget: the static busybox's wget crashes in glibc's resolver)
    const httpGet = (shell: SerialShell) => shell.run(`printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${outside!.address} ${outside!.port}`, 30_000);
    expect((await httpGet(vm1)).output).toContain(outside!.body);

    // Isolated: a NIC hot-added on each guest; the peer yes, the outside no.
    await run(['network', 'create', 'quiet', '--isolated', '--subnet', '10.91.1.0/24']);
    networkIds.push((await networkInfo('quiet')).id);
    expect((await run(['nic', 'attach', 'vm1', 'quiet'])).stdout).toMatch(/Attached NIC 1 \(52:54:00:[0-9a-f:]+\) on quiet, address 10.91.1.2 to vm1/);
    await run(['nic', 'attach', 'vm2', 'quiet', '--ip', '10.91.1.20']);
    for (const shell of [vm1, vm2]) {
      const seen = await shell.run('for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/net/eth1 ] && break; sleep 1; done; ls /sys/class/net');
      expect(seen.output).toContain('eth1');
      const dhcp = await shell.run('ip link set eth1 up && udhcpc -i eth1 -n -q -t 10 -T 3 -s /tmp/udhcpc.sh', 60_000);
      expect(dhcp.status, dhcp.output).toBe(0);
    }
    expect((await vm1.run('ip -4 addr show eth1')).output).toContain('inet 10.91.1.2/24');
    const peer = await vm1.run('ping -c 1 -W 5 10.91.1.20');
    expect(peer.status, peer.output).toBe(0);
    // vm2 sends everything through the isolated network's gateway: virtnode's table must drop it.
    await vm2.run('ip route del default; ip route add default via 10.91.1.1 dev eth1');
    expect((await httpGet(vm2)).output).not.toContain(outside!.body);
    const isolatedNic = (JSON.parse((await run(['info', 'vm1', '--format', 'json'])).stdout) as { nics: Array<{ index: number; network: string; lease?: string }> }).nics.find((n) => n.network === 'quiet');
    expect(isolatedNic).toMatchObject({ index: 1, lease: '10.91.1.2' });

    // Live detach: the guest lets go of the hot-plugged NIC; the tap goes with it.
    await run(['nic', 'detach', 'vm1', '1']);
    expect((await vm1.run('sleep 1; ls /sys/class/net')).output).not.toContain('eth1');
    const rootBus = await virtnode(home, ['nic', 'detach', 'vm1', '0']);
    expect(rootBus.code).toBe(5);
    expect(rootBus.stderr).toContain('cannot be unplugged live');

    await run(['stop', '--force', 'vm2']);
    const rm = await virtnode(home, ['network', 'rm', 'lab']);
    expect(rm.code).toBe(5);
    expect(rm.stderr).toContain('network lab is used by instance vm1, instance vm2');
    // Offline detach; the tap of a stopped instance is gone already.
    await run(['nic', 'detach', 'vm2', '1']);
    // Left now: the two bridges and vm1's tap on lab (its tap on quiet went with the live detach).
    expect(networkLeftovers(home, []).links.filter((l) => l.startsWith('vnt'))).toHaveLength(1);
    // vm1 killed: its guest never released its lease (10.91.0.50, running for an hour). A new instance is not given
    // that address, which dnsmasq would not hand it while the lease runs: it gets the next one, and DHCP agrees.
    await run(['delete', '--force', 'vm1']);
    await run(['create', 'vm6', ...bootArgs, '--network', 'lab', '--start']);
    const vm6Nic = (JSON.parse((await run(['info', 'vm6', '--format', 'json'])).stdout) as { nics: Array<{ address?: string }> }).nics[0];
    expect(vm6Nic?.address).toBe('10.91.0.51');
    const vm6 = await shellOf('vm6');
    await vm6.run(UDHCPC_SCRIPT_SETUP);
    const renewed = await vm6.run('ip link set eth0 up && udhcpc -i eth0 -n -q -t 10 -T 3 -s /tmp/udhcpc.sh', 60_000);
    expect(renewed.status, renewed.output).toBe(0);
    expect((await vm6.run('ip -4 addr show eth0')).output).toContain('inet 10.91.0.51/24');
    // Clean up and check that nothing of virtnode remains on the host.
    await run(['delete', '--force', 'vm6']);
    await run(['delete', '--force', 'vm2']);
    await run(['network', 'rm', 'lab']);
    await run(['network', 'rm', 'quiet']);
    expect(networkLeftovers(home, networkIds)).toEqual({ links: [], nftTables: [], dnsmasq: [] });
    expect(existsSync(join(home, 'networks', 'lab'))).toBe(false);
    expect(existsSync(join(home, 'networks', 'quiet'))).toBe(false);
  }, 240_000);

  it("a user-mode NIC cannot reach the host's loopback (10.0.2.2) when a NAT NIC is the way out; its forwards still work", async () => {
    // A service on the host's loopback, as a daemon's TCP API would be.
    const service = createServer((c) => c.end('host-service\n'));
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    const servicePort = (service.address() as { port: number }).port;
    try {
      await run(['network', 'create', 'wayout', '--subnet', '10.91.4.0/24']);
      await run(['network', 'create', 'island', '--isolated', '--subnet', '10.91.5.0/24']);
      await run(['create', 'vm4', ...bootArgs, '--network', 'user', '--network', 'wayout', '--start']);
      await run(['create', 'vm5', ...bootArgs, '--network', 'user', '--network', 'island', '--start']);
      const [vm4, vm5] = await Promise.all([shellOf('vm4'), shellOf('vm5')]);
      for (const shell of [vm4, vm5]) {
        await shell.run(UDHCPC_SCRIPT_SETUP);
        const dhcp = await shell.run('ip link set eth0 up && udhcpc -i eth0 -n -q -t 10 -T 3 -s /tmp/udhcpc.sh', 60_000);
        expect(dhcp.status, dhcp.output).toBe(0);
      }
      const askHost = (shell: SerialShell) => shell.run(`echo hi | nc -w 3 10.0.2.2 ${servicePort}`, 30_000);
      expect((await askHost(vm5)).output).toContain('host-service'); // user-mode is vm5's only way out: unrestricted
      expect((await askHost(vm4)).output).not.toContain('host-service');

      // The restricted NIC still carries its forwards: a port forward to a listener in vm4.
      await run(['port', 'add', 'vm4', `${servicePort + 1}:7777`]);
      await vm4.run('(echo from-guest | nc -l -p 7777 &) ; sleep 1');
      const answer = await new Promise<string>((resolve, reject) => {
        const c = connect(servicePort + 1, '127.0.0.1');
        let got = '';
        c.on('data', (d) => (got += d.toString()));
        c.on('close', () => resolve(got));
        c.on('error', reject);
      });
      expect(answer).toContain('from-guest');
    } finally {
      service.close();
      for (const name of ['vm4', 'vm5']) await virtnode(home, ['delete', '--force', name]);
      for (const name of ['wayout', 'island']) await virtnode(home, ['network', 'rm', name]);
    }
  }, 240_000);
});

describe('managed networks come back; stale taps go', { timeout: 180_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-net-reboot-');
  afterAll(async () => {
    await virtnode(home, ['delete', '--force', 'vm']).catch(() => {});
    await virtnode(home, ['network', 'rm', 'boot']).catch(() => {});
    cleanup();
  });

  it('after a "reboot" (bridge, nft table and dnsmasq gone) any command brings the network back; a killed QEMU leaves no tap', async () => {
    const run = async (args: string[]) => {
      const r = await virtnode(home, args);
      expect(r.code, `virtnode ${args.join(' ')}\n${r.stderr}`).toBe(0);
      return r;
    };
    await run(['network', 'create', 'boot', '--subnet', '10.91.2.0/24']);
    const net = JSON.parse((await run(['network', 'info', 'boot', '--format', 'json'])).stdout) as NetworkJson & { dnsmasqPid: number };
    // What a host reboot does to it.
    process.kill(net.dnsmasqPid, 'SIGKILL');
    execFileSync('ip', ['link', 'del', net.bridge]);
    execFileSync('nft', ['delete', 'table', 'ip', `virtnode_${net.id}`]);
    rmSync(dnsmasqReadableDir(net.id), { recursive: true }); // /run is a tmpfs
    expect(networkLeftovers(home, [net.id])).toEqual({ links: [], nftTables: [], dnsmasq: [] });
    expect((await run(['reconcile'])).stdout).toContain('network boot: brought up again');
    const back = JSON.parse((await run(['network', 'info', 'boot', '--format', 'json'])).stdout) as NetworkJson;
    expect(back.up).toBe(true);
    expect(networkLeftovers(home, [net.id]).nftTables).toEqual([`virtnode_${net.id}`]);

    // An instance's tap exists while it runs; killing its QEMU behind virtnode's back leaves a stale one.
    await run(['create', 'vm', ...bootArgs, '--network', 'boot', '--start']);
    const taps = () => networkLeftovers(home, []).links.filter((l) => l.startsWith('vnt'));
    expect(taps()).toHaveLength(1);
    const pid = (JSON.parse((await run(['info', 'vm', '--format', 'json'])).stdout) as { pid: number }).pid;
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    expect((JSON.parse((await run(['list', '--format', 'json'])).stdout) as Array<{ state: string }>)[0]?.state).toBe('crashed');
    expect(taps()).toEqual([]);
    // Started again: network ensured, tap made again.
    await run(['start', 'vm']);
    expect(taps()).toHaveLength(1);
    await run(['delete', '--force', 'vm']);
    await run(['network', 'rm', 'boot']);
    expect(networkLeftovers(home, [net.id])).toEqual({ links: [], nftTables: [], dnsmasq: [] });
  }, 240_000);
});

describe('a FORWARD chain that drops by default in another table (Docker-like)', () => {
  const { home, cleanup } = tempHome('virtnode-net-fwd-');
  afterAll(cleanup);

  it('is detected and explained by network create and network info, and left untouched by network rm', () => {
    // In a namespace of its own: a drop policy here would break the other test files' networks.
    const script = [
      'set -e',
      'exec 2>&1',
      'ip link set lo up',
      'nft add table ip dockerish',
      "nft 'add chain ip dockerish FORWARD { type filter hook forward priority 0; policy drop; }'",
      `"$1" network create lab --subnet 10.91.3.0/24`,
      `"$1" network info lab`,
      `"$1" network rm lab`,
      'nft list table ip dockerish',
    ].join('\n');
    const out = execFileSync('unshare', ['-n', '--', 'bash', '-c', script, '_', join(REPO_ROOT, 'bin', 'virtnode')], { encoding: 'utf8', env: { ...process.env, VIRTNODE_HOME: home } });
    expect(out).toMatch(/warning: the forward chain\(s\) ip dockerish FORWARD drop forwarded packets by default \(Docker does this\)/);
    expect(out).toMatch(/Warning:\s+the forward chain\(s\) ip dockerish FORWARD/);
    expect(out).toContain('Removed network lab');
    expect(out).toMatch(/chain FORWARD \{\s+type filter hook forward priority filter; policy drop;/);
  });
});

describe('bridged network', { timeout: 180_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-net-br-');
  const bridge = `vnxbr${process.pid.toString(36)}`.slice(0, 15);
  afterAll(async () => {
    await virtnode(home, ['delete', '--force', 'vm']).catch(() => {});
    await virtnode(home, ['network', 'rm', 'lan']).catch(() => {});
    try {
      execFileSync('ip', ['link', 'del', bridge]);
    } catch {
      /* not made */
    }
    cleanup();
  });

  it("puts the NIC's tap on the existing bridge and leaves the bridge alone on rm", async () => {
    const run = async (args: string[], code = 0) => {
      const r = await virtnode(home, args);
      expect(r.code, `virtnode ${args.join(' ')}\n${r.stderr}`).toBe(code);
      return r;
    };
    execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await run(['network', 'create', 'lan', '--bridge', bridge]);
    expect(JSON.parse((await run(['network', 'info', 'lan', '--format', 'json'])).stdout)).toMatchObject({ mode: 'bridge', bridge, up: true });
    const ip = await run(['create', 'vmx', ...bootArgs, '--network', 'lan', '--ip', '10.1.2.3'], 2);
    expect(ip.stderr).toContain(`--ip: network lan is bridged to ${bridge}`);
    await run(['create', 'vm', ...bootArgs, '--network', 'lan', '--start']);
    const links = JSON.parse(execFileSync('ip', ['-json', 'link', 'show', 'master', bridge], { encoding: 'utf8' })) as Array<{ ifname: string }>;
    expect(links.map((l) => l.ifname)).toEqual([expect.stringMatching(/^vnt[0-9a-f]{10}$/)]);
    await run(['delete', '--force', 'vm']);
    await run(['network', 'rm', 'lan']);
    expect(JSON.parse(execFileSync('ip', ['-json', 'link', 'show', 'master', bridge], { encoding: 'utf8' }) || '[]')).toEqual([]);
    expect(JSON.parse(execFileSync('ip', ['-json', 'link', 'show', bridge], { encoding: 'utf8' }))).toHaveLength(1);
  });
});
