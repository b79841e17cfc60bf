import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceView, NetworkView } from '../../src/api/schemas.ts';
import { bridgeName, nftTableName } from '../../src/network/names.ts';
import { vxlanName } from '../../src/network/vxlan.ts';
import { type SimCluster, type SimHost, crashHost, destroyKeepingLogs, formCluster, instanceDirOn, ok, tinyGuestHosts } from '../helpers/cluster-hosts.ts';
import { addressesOn, dhcpIn, dnsmasqOf, floodOf, guestDevice, inNs, leftovers, networksOn, nftTablesOf } from '../helpers/cluster-networks.ts';
import { eventually } from '../helpers/daemon.ts';
import { SerialShell } from '../helpers/serial-shell.ts';

/**
 * A cluster network outlives its DHCP host: three simulated hosts (netns, real daemons and etcd members, bridges,
 * VXLAN, nftables, dnsmasq), a network created on h1 (its DHCP/DNS and gateway host), tiny guests on h2 and h3.
 * h1 dies whole: one of h2 and h3 takes the role over (the definition names it), the guests renew their leases
 * and keep their addresses, reach the gateway and each other by name; h1 comes back and brings nothing of the
 * role back (no gateway address, dnsmasq or nftables table). Then the new DHCP host is cut off from the others:
 * fenced, it drops the role before its lease expires, another host takes it, and it does not take it back.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait'];
const BOOT_TIMEOUT_MS = 120_000;

describe('a cluster network whose DHCP host dies: another host takes its DHCP/DNS and gateway over', { timeout: 300_000 }, () => {
  let sim: SimCluster | undefined;
  let h: SimHost[];
  const shells = new Map<string, { shell: SerialShell; dev: string; address: string }>();
  let prefix = '';
  let gateway = '';
  let ha: NetworkView;
  let taker: SimHost;

  const info = async (x: SimHost) => JSON.parse(await ok(x, ['network', 'info', 'ha', '--format', 'json'])) as NetworkView;
  /** Whether a host holds the role: the gateway address on its bridge, its nftables table, a dnsmasq. */
  const role = (x: SimHost) => ({
    gateway: addressesOn(x, bridgeName(ha.id)).includes(`${gateway}/24`),
    nft: nftTablesOf(x).includes(nftTableName(ha.id)),
    dnsmasq: dnsmasqOf(x).length,
  });
  const NONE = { gateway: false, nft: false, dnsmasq: 0 };
  const ALL = { gateway: true, nft: true, dnsmasq: 1 };

  beforeAll(async () => {
    sim = await tinyGuestHosts(3, { cpuOvercommit: 4 });
    h = sim.hosts;
    prefix = `10.${h[0]!.address.split('.')[1]}.110`;
    gateway = `${prefix}.1`;
    await formCluster(h);
  }, 180_000);
  afterAll(async () => {
    for (const s of shells.values()) s.shell.close();
    await destroyKeepingLogs(sim, 'cluster-networks-ha');
  });

  it('h1 creates the network; guests on h2 and h3 get their addresses from h1', async () => {
    ha = JSON.parse(await ok(h[0]!, ['network', 'create', 'ha', '--subnet', `${prefix}.0/24`, '--dhcp-range', `${prefix}.50-${prefix}.99`, '--format', 'json'])) as NetworkView;
    expect(ha).toMatchObject({ dhcpHost: 'h1', gateway });
    for (const x of h) await eventually(async () => ((await networksOn(x)).some((n) => n.name === 'ha') ? true : undefined), 20_000, `ha on ${x.name}`);
    await ok(h[1]!, ['launch', 'tiny', '--name', 'g2', ...LAUNCH, '--target', 'h2', '--network', 'ha']);
    await ok(h[1]!, ['launch', 'tiny', '--name', 'g3', ...LAUNCH, '--target', 'h3', '--network', 'ha']);
    for (const [name, host] of [['g2', h[1]!], ['g3', h[2]!]] as const) {
      const nic = (JSON.parse(await ok(h[1]!, ['info', name, '--format', 'json'])) as InstanceView).nics.find((n) => n.network === 'ha')!;
      const shell = await SerialShell.whenReady(instanceDirOn(host, name), BOOT_TIMEOUT_MS);
      const dev = await guestDevice(shell, nic.mac);
      shells.set(name, { shell, dev, address: nic.address! });
      expect(await dhcpIn(shell, dev), `${name} on ${host.name}`).toBe(nic.address);
    }
    expect(role(h[0]!)).toEqual(ALL);
    expect(role(h[1]!)).toEqual(NONE);
    expect(role(h[2]!)).toEqual(NONE);
  }, 300_000);

  it('h1 dies: one of h2 and h3 takes the role over; the guests renew, keep their addresses, reach the gateway and each other by name', async () => {
    await crashHost(h[0]!);
    // The whole host is gone, its dnsmasq too (in the simulation its namespace and links stay: see the next test).
    for (const pid of dnsmasqOf(h[0]!)) process.kill(Number(pid), 'SIGKILL');
    const t0 = Date.now();
    const now = await eventually(async () => {
      const seen = await info(h[1]!);
      return seen.dhcpHost !== 'h1' ? seen.dhcpHost : undefined;
    }, 30_000, 'another DHCP host for ha');
    taker = h.find((x) => x.name === now)!;
    expect(['h2', 'h3']).toContain(taker.name);
    // Both survivors name it; only it holds the role.
    await eventually(async () => ((await info(h[2]!)).dhcpHost === taker.name ? true : undefined), 20_000, 'h3 names the new DHCP host');
    await eventually(async () => (JSON.stringify(role(taker)) === JSON.stringify(ALL) ? true : undefined), 20_000, `the role up on ${taker.name}`);
    console.log(`DHCP/DNS and gateway of ha up on ${taker.name} ${Date.now() - t0} ms after h1 was killed (lease TTL 3 s)`);
    for (const x of h.slice(1).filter((y) => y !== taker)) expect(role(x)).toEqual(NONE);
    expect((await info(taker)).dnsmasqPid).toBeGreaterThan(0);
    expect(await ok(h[1]!, ['network', 'info', 'ha'])).toMatch(new RegExp(`^Cluster:\\s+cluster-wide: VXLAN ${ha.vni}, DHCP/DNS and gateway on ${taker.name}$`, 'm'));

    // The guests ask again for their addresses (reserved in etcd): they keep them.
    for (const [name, g] of shells) expect(await dhcpIn(g.shell, g.dev, { requested: g.address }), name).toBe(g.address);
    const leases = JSON.parse(await ok(h[1]!, ['network', 'leases', 'ha', '--format', 'json'])) as Array<{ address: string; instance?: string }>;
    expect(leases.map((l) => [l.instance, l.address]).sort()).toEqual([...shells].map(([name, g]) => [name, g.address]).sort());
    const g2 = shells.get('g2')!;
    const g3 = shells.get('g3')!;
    // The gateway has moved to another MAC: a guest may need a few tries until its ARP entry is renewed.
    const reach = (target: string) => `ok=1; for i in 1 2 3 4 5 6 7 8 9 10; do if ping -c 1 -W 3 ${target} >/dev/null; then ok=0; break; fi; done; [ $ok = 0 ]`;
    for (const g of [g2, g3]) {
      const ping = await g.shell.run(reach(gateway), 60_000);
      expect(ping.status, ping.output).toBe(0);
    }
    const byName = await g2.shell.run(`nslookup g3.ha.internal ${gateway}`, 30_000);
    expect(byName.output).toContain(g3.address);
    const pingName = await g3.shell.run(reach('g2.ha.internal'), 60_000);
    expect(pingName.status, pingName.output).toBe(0);
  }, 300_000);

  it('h1 comes back: it finds the role taken and brings no gateway, dnsmasq or nftables table back', async () => {
    // Left as the crash left them in the simulation (a real crash leaves nothing): the gateway address and table.
    expect(role(h[0]!)).toMatchObject({ gateway: true, nft: true, dnsmasq: 0 });
    await h[0]!.startDaemon();
    const vx = vxlanName(ha.id);
    await eventually(async () => (floodOf(h[0]!, vx).join() === [h[1]!.address, h[2]!.address].sort().join() ? true : undefined), 40_000, 'h1 floods to h2 and h3 again');
    await eventually(async () => (JSON.stringify(role(h[0]!)) === JSON.stringify(NONE) ? true : undefined), 20_000, 'h1 holds nothing of the role');
    // A while later: still nothing on h1, the role still the taker's, and h1 names it too.
    await new Promise((r) => setTimeout(r, 5_000));
    expect(role(h[0]!)).toEqual(NONE);
    expect(role(taker)).toEqual(ALL);
    const back = await info(h[0]!);
    expect(back).toMatchObject({ dhcpHost: taker.name, up: true });
    expect(back.dnsmasqPid).toBeUndefined();
    const ping = await shells.get('g2')!.shell.run(`ping -c 2 -W 5 ${gateway}`, 30_000);
    expect(ping.status, ping.output).toBe(0);
  }, 180_000);

  it('the DHCP host cut off: it drops the role before its lease expires, another host takes it, and it does not take it back', async () => {
    const cut = taker;
    const guestElsewhere = [...shells].find(([name]) => name !== (cut === h[1] ? 'g2' : 'g3'))![1];
    inNs(cut, ['ip', 'link', 'set', 'eth0', 'down']);
    const t0 = Date.now();
    let restored = false;
    try {
      await eventually(async () => (JSON.stringify(role(cut)) === JSON.stringify(NONE) ? true : undefined), 15_000, `${cut.name} drops the role`);
      console.log(`${cut.name} dropped the DHCP/DNS and gateway ${Date.now() - t0} ms after its link went down (lease TTL 3 s)`);
      await cut.logged('"msg":"fenced: DHCP/DNS and gateway dropped before the lease can expire"');
      const asker = h.find((x) => x !== cut)!;
      const next = await eventually(async () => {
        const seen = await info(asker);
        return seen.dhcpHost !== cut.name ? seen.dhcpHost : undefined;
      }, 30_000, 'another DHCP host for ha');
      taker = h.find((x) => x.name === next)!;
      await eventually(async () => (JSON.stringify(role(taker)) === JSON.stringify(ALL) ? true : undefined), 20_000, `the role up on ${taker.name}`);
      // The guest on a host still connected keeps its address and reaches the gateway.
      expect(await dhcpIn(guestElsewhere.shell, guestElsewhere.dev, { requested: guestElsewhere.address })).toBe(guestElsewhere.address);
      const ping = await guestElsewhere.shell.run(`ok=1; for i in 1 2 3 4 5 6 7 8 9 10; do if ping -c 1 -W 3 ${gateway} >/dev/null; then ok=0; break; fi; done; [ $ok = 0 ]`, 60_000);
      expect(ping.status, ping.output).toBe(0);
      inNs(cut, ['ip', 'link', 'set', 'eth0', 'up']);
      restored = true;
      await eventually(async () => (cut.output().includes('"msg":"fence lifted') ? true : undefined), 40_000, `${cut.name} holds its lease again`);
      const vx = vxlanName(ha.id);
      const others = h.filter((x) => x !== cut).map((x) => x.address).sort().join();
      await eventually(async () => (floodOf(cut, vx).join() === others ? true : undefined), 30_000, `${cut.name} floods to the others again`);
      await new Promise((r) => setTimeout(r, 5_000));
      expect(role(cut)).toEqual(NONE);
      expect(role(taker)).toEqual(ALL);
      expect((await info(cut)).dhcpHost).toBe(taker.name);
    } finally {
      if (!restored) inNs(cut, ['ip', 'link', 'set', 'eth0', 'up']);
    }
  }, 180_000);

  it('deleting the guests and the network leaves nothing on any host', async () => {
    for (const s of shells.values()) s.shell.close();
    shells.clear();
    await ok(h[0]!, ['delete', '--force', 'g2']);
    await ok(h[0]!, ['delete', '--force', 'g3']);
    await ok(h[0]!, ['network', 'rm', 'ha']);
    for (const x of h) {
      await eventually(async () => (leftovers(x, ha.id).length === 0 ? true : undefined), 30_000, `nothing of ha left on ${x.name}: ${leftovers(x, ha.id).join(', ')}`);
      expect(await networksOn(x)).toEqual([]);
    }
  }, 120_000);
});
