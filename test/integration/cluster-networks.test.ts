import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceView, NetworkView } from '../../src/api/schemas.ts';
import { bridgeName, tapName } from '../../src/network/names.ts';
import { vxlanName } from '../../src/network/vxlan.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, formCluster, instanceDirOn, ok, requestOn, tinyGuestHosts } from '../helpers/cluster-hosts.ts';
import { dhcpIn, dnsmasqOf, floodOf, guestDevice, inNs, leftovers, linksOf, networksOn } from '../helpers/cluster-networks.ts';
import { eventually } from '../helpers/daemon.ts';
import { SerialShell } from '../helpers/serial-shell.ts';

/**
 * Networks across a cluster of three simulated hosts (netns, real daemons and etcd members, real bridges, VXLAN,
 * nftables and dnsmasq): a network created on one host is defined on all; tiny guests on two hosts get distinct
 * addresses from the one dnsmasq and reach each other over the VXLAN; bad input changes nothing; removing it
 * leaves nothing on any host.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait'];
const BOOT_TIMEOUT_MS = 120_000;

describe('networks across a cluster of simulated hosts (VXLAN, one DHCP host, the tiny guest)', { timeout: 300_000 }, () => {
  let sim: SimCluster | undefined;
  let h: SimHost[];
  const shells: SerialShell[] = [];
  let subnet = '';
  let prefix = '';
  let lab: NetworkView;

  beforeAll(async () => {
    sim = await tinyGuestHosts(3, { cpuOvercommit: 4 });
    h = sim.hosts;
    // The guests' subnet: next to the hosts' own segment, so nothing else in their namespaces routes it.
    prefix = `10.${h[0]!.address.split('.')[1]}.100`;
    subnet = `${prefix}.0/24`;
    await formCluster(h);
  }, 180_000);
  afterAll(async () => {
    for (const s of shells) s.close();
    await destroyKeepingLogs(sim, 'cluster-networks');
  });

  it('a network created on h1 is defined on every host, each with its bridge and a VXLAN flooding to the others', async () => {
    const created = JSON.parse(await ok(h[0]!, ['network', 'create', 'lab', '--subnet', subnet, '--dhcp-range', `${prefix}.50-${prefix}.99`, '--format', 'json'])) as NetworkView;
    expect(created).toMatchObject({ name: 'lab', mode: 'nat', cluster: true, dhcpHost: 'h1', gateway: `${prefix}.1`, up: true });
    expect(created.vni).toBeGreaterThan(0);
    lab = created;
    for (const x of h) {
      const seen = await eventually(async () => (await networksOn(x)).find((n) => n.name === 'lab'), 20_000, `lab on ${x.name}`);
      expect(seen).toMatchObject({ id: lab.id, vni: lab.vni, dhcpHost: 'h1', subnet });
      // Realized by each daemon: the bridge, the VXLAN on it, flooding to exactly the other hosts.
      const others = h.filter((y) => y !== x).map((y) => y.address).sort();
      await eventually(async () => (linksOf(x).includes(vxlanName(lab.id)) && floodOf(x, vxlanName(lab.id)).join() === others.join() ? true : undefined), 20_000, `VXLAN on ${x.name}`);
      expect(linksOf(x)).toContain(bridgeName(lab.id));
      const info = JSON.parse(await ok(x, ['network', 'info', 'lab', '--format', 'json'])) as NetworkView;
      expect(info).toMatchObject({ bridgeExists: true, vxlanExists: true, up: true });
      // One DHCP/DNS service and one gateway: h1's.
      expect(dnsmasqOf(x).length).toBe(x === h[0] ? 1 : 0);
      expect(inNs(x, ['ip', '-4', '-o', 'addr', 'show', 'dev', bridgeName(lab.id)]).includes(`${prefix}.1/24`)).toBe(x === h[0]);
    }
    const vx = JSON.parse(inNs(h[1]!, ['ip', '-json', '-details', 'link', 'show', vxlanName(lab.id)])) as Array<{ linkinfo: { info_data: { id: number; local: string; learning: boolean; port: number } } }>;
    expect(vx[0]!.linkinfo.info_data).toMatchObject({ id: lab.vni, local: h[1]!.address, learning: false, port: 4789 });
    expect(await ok(h[2]!, ['network', 'info', 'lab'])).toMatch(new RegExp(`^Cluster:\\s+cluster-wide: VXLAN ${lab.vni}, DHCP/DNS and gateway on h1$`, 'm'));
  }, 120_000);

  it('bad input is refused naming the field, with nothing changed on any host', async () => {
    const before = await Promise.all(h.map(networksOn));
    const dup = await h[1]!.cli(['network', 'create', 'lab', '--subnet', '10.250.1.0/24']);
    expect(dup.code).toBe(4);
    expect(dup.stderr).toContain('network lab already exists');
    const vni = await requestOn(h[2]!, 'POST', '/networks', { name: 'other', subnet: '10.250.2.0/24', vni: lab.vni });
    expect(vni.status).toBe(409);
    expect(vni.body.error).toMatchObject({ code: 'CONFLICT', field: 'vni' });
    expect(vni.body.error?.message).toContain(`VXLAN ${lab.vni} is network lab's already`);
    const range = await requestOn(h[2]!, 'POST', '/networks', { name: 'other', subnet: '10.250.2.0/24', vni: 2 ** 24 });
    expect(range.status).toBe(400);
    expect(range.body.error).toMatchObject({ field: 'vni' });
    const noBridge = await h[1]!.cli(['network', 'create', 'shared', '--bridge', 'nosuchbr0']);
    expect(noBridge.code).toBe(3);
    expect(noBridge.stderr).toContain('--bridge: there is no bridge nosuchbr0');

    // Two hosts create one name at once: one wins, the other gets a 409 naming `name`.
    const [a, b] = await Promise.all([
      requestOn(h[0]!, 'POST', '/networks', { name: 'race', subnet: '10.250.3.0/24' }),
      requestOn(h[1]!, 'POST', '/networks', { name: 'race', subnet: '10.250.4.0/24' }),
    ]);
    expect([a.status, b.status].sort()).toEqual([201, 409]);
    const loser = a.status === 409 ? a : b;
    expect(loser.body.error).toMatchObject({ code: 'CONFLICT', field: 'name' });
    expect(loser.body.error?.message).toContain('network race already exists');
    const winner = a.status === 201 ? h[0]! : h[1]!;
    await ok(winner, ['network', 'rm', 'race']);
    // Two hosts create different names with overlapping subnets at once: one wins, the other gets a 409 naming
    // --subnet and the winner (from etcd, or from its own check if it had already seen the winner's definition).
    const [wide, narrow] = await Promise.all([
      requestOn(h[0]!, 'POST', '/networks', { name: 'wide', subnet: '10.250.0.0/16' }),
      requestOn(h[1]!, 'POST', '/networks', { name: 'narrow', subnet: '10.250.5.0/24' }),
    ]);
    expect([wide.status, narrow.status].sort()).toEqual([201, 409]);
    const [won, lost] = wide.status === 201 ? [{ host: h[0]!, name: 'wide' }, narrow] : [{ host: h[1]!, name: 'narrow' }, wide];
    expect(lost.body.error).toMatchObject({ code: 'CONFLICT', field: '--subnet' });
    expect(lost.body.error?.message).toContain(`overlaps network ${won.name}`);
    await ok(won.host, ['network', 'rm', won.name]);
    for (const [i, x] of h.entries()) {
      await eventually(async () => ((await networksOn(x)).map((n) => n.name).join() === before[i]!.map((n) => n.name).join() ? true : undefined), 20_000, `networks of ${x.name} as before`);
      expect(linksOf(x).filter((l) => l.startsWith('vnb') || l.startsWith('vnx')).sort()).toEqual([bridgeName(lab.id), vxlanName(lab.id)].sort());
    }
  }, 120_000);

  it('tiny guests on h1 and h2 get distinct addresses from the one dnsmasq and reach each other across the VXLAN, by name too', async () => {
    // g1 has a named CPU model: a later test moves it live.
    await ok(h[2]!, ['launch', 'tiny', '--name', 'g1', ...LAUNCH, '--cpu-model', 'qemu64', '--target', 'h1', '--network', 'lab']);
    await ok(h[2]!, ['launch', 'tiny', '--name', 'g2', ...LAUNCH, '--target', 'h2', '--network', 'lab']);
    const guests = [
      { name: 'g1', host: h[0]! },
      { name: 'g2', host: h[1]! },
    ];
    const addresses: string[] = [];
    for (const g of guests) {
      const info = JSON.parse(await ok(h[2]!, ['info', g.name, '--format', 'json'])) as InstanceView;
      const nic = info.nics.find((n) => n.network === 'lab')!;
      const shell = await SerialShell.whenReady(instanceDirOn(g.host, g.name), BOOT_TIMEOUT_MS);
      shells.push(shell);
      const dev = await guestDevice(shell, nic.mac);
      const got = await dhcpIn(shell, dev);
      expect(got, `${g.name} on ${g.host.name}`).toBe(nic.address);
      addresses.push(got!);
    }
    expect(new Set(addresses).size).toBe(2);
    for (const a of addresses) expect(a.startsWith(`${prefix}.`)).toBe(true);
    // Any host lists both as users of the network.
    expect((JSON.parse(await ok(h[2]!, ['network', 'info', 'lab', '--format', 'json'])) as NetworkView).instances?.sort()).toEqual(['g1', 'g2']);
    expect((await networksOn(h[0]!)).find((n) => n.name === 'lab')?.instances?.sort()).toEqual(['g1', 'g2']);
    // Both leases are the one dnsmasq's, on h1.
    const leases = JSON.parse(await ok(h[0]!, ['network', 'leases', 'lab', '--format', 'json'])) as Array<{ address: string; instance?: string }>;
    expect(leases.map((l) => [l.instance, l.address]).sort()).toEqual([['g1', addresses[0]], ['g2', addresses[1]]]);
    // Asked on another host, the DHCP host answers.
    expect(JSON.parse(await ok(h[2]!, ['network', 'leases', 'lab', '--format', 'json']))).toEqual(leases);
    const [g1, g2] = shells.slice(-2) as [SerialShell, SerialShell];
    const ping = await g1.run(`ping -c 2 -W 5 ${addresses[1]}`, 30_000);
    expect(ping.status, ping.output).toBe(0);
    const back = await g2.run(`ping -c 2 -W 5 ${addresses[0]}`, 30_000);
    expect(back.status, back.output).toBe(0);
    const byName = await g2.run(`nslookup g1.lab.internal ${prefix}.1`, 30_000);
    expect(byName.output).toContain(addresses[0]);

    // A static address another host holds is refused, naming --ip and the holder.
    const taken = await h[2]!.cli(['launch', 'tiny', '--name', 'g3', ...LAUNCH, '--target', 'h3', '--network', 'lab', '--ip', addresses[0]!]);
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toContain(`--ip: ${addresses[0]} is already taken on network lab by instance g1 on host h1`);

    // In use on h1 and h2: refused from any host.
    const rm = await h[2]!.cli(['network', 'rm', 'lab']);
    expect(rm.code).toBe(5);
    expect(rm.stderr).toContain('network lab is used by');
    expect(rm.stderr).toContain('instance g1 on host h1');
    expect(rm.stderr).toContain('instance g2 on host h2');
  }, 300_000);

  it('a bridged cluster network: a start on a host without its bridge is refused naming the bridge', async () => {
    const br = `vntb${process.pid % 10000}`;
    inNs(h[0]!, ['ip', 'link', 'add', br, 'type', 'bridge']);
    try {
      await ok(h[0]!, ['network', 'create', 'shared', '--bridge', br]);
      await eventually(async () => ((await networksOn(h[1]!)).some((n) => n.name === 'shared') ? true : undefined), 20_000, 'shared on h2');
      const r = await h[0]!.cli(['launch', 'tiny', '--name', 'b1', ...LAUNCH, '--target', 'h2', '--network', 'shared']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`the bridge ${br} does not exist on host h2`);
      expect(JSON.parse(await ok(h[0]!, ['list', '--format', 'json'])).map((i: InstanceView) => i.name).sort()).toEqual(['g1', 'g2']);
      await ok(h[1]!, ['network', 'rm', 'shared']);
      for (const x of h) await eventually(async () => ((await networksOn(x)).some((n) => n.name === 'shared') ? undefined : true), 20_000, `shared gone from ${x.name}`);
    } finally {
      inNs(h[0]!, ['ip', 'link', 'del', br]);
    }
  }, 120_000);

  it('a host leaving drops out of the flood lists and comes back in when it returns', async () => {
    const vx = vxlanName(lab.id);
    await h[2]!.stopDaemon();
    await eventually(async () => (floodOf(h[0]!, vx).join() === h[1]!.address ? true : undefined), 30_000, 'h3 gone from h1 flood list');
    await h[2]!.startDaemon();
    await eventually(async () => (floodOf(h[0]!, vx).join() === [h[1]!.address, h[2]!.address].sort().join() ? true : undefined), 30_000, 'h3 back in h1 flood list');
  }, 120_000);

  it('a guest on the cluster network moves live to h3 with its MAC and address: g2 still reaches it, its lease and record follow', async () => {
    const before = JSON.parse(await ok(h[1]!, ['info', 'g1', '--format', 'json'])) as InstanceView;
    const nic = before.nics.find((n) => n.network === 'lab')!;
    const g2 = shells[1]!;
    await ok(h[1]!, ['move', 'g1', '--to', 'h3']);
    const after = JSON.parse(await ok(h[0]!, ['info', 'g1', '--format', 'json'])) as InstanceView;
    expect(after.host).toBe('h3');
    expect(after.nics.find((n) => n.network === 'lab')).toMatchObject({ mac: nic.mac, address: nic.address });
    // Its tap went with it; h3 had no DHCP of its own to give (h1 keeps serving the lease).
    const tap = tapName(before.uuid, nic.index);
    expect(linksOf(h[0]!)).not.toContain(tap);
    expect(linksOf(h[2]!)).toContain(tap);
    const ping = await g2.run(`ping -c 3 -W 5 ${nic.address}`, 30_000);
    expect(ping.status, ping.output).toBe(0);
    // h1 dropped its record of the NIC and h3 holds it: the network's users and leases are unchanged.
    await eventually(async () => {
      const info = JSON.parse(await ok(h[0]!, ['network', 'info', 'lab', '--format', 'json'])) as NetworkView;
      return info.instances?.sort().join() === 'g1,g2' ? true : undefined;
    }, 30_000, 'lab still lists g1 and g2');
    const leases = JSON.parse(await ok(h[2]!, ['network', 'leases', 'lab', '--format', 'json'])) as Array<{ address: string; instance?: string }>;
    expect(leases.find((l) => l.instance === 'g1')?.address).toBe(nic.address);
    // A static address g1 holds is still refused on another host: the claim moved, it did not vanish.
    const taken = await h[0]!.cli(['launch', 'tiny', '--name', 'g4', ...LAUNCH, '--target', 'h1', '--network', 'lab', '--ip', nic.address!]);
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toContain(`--ip: ${nic.address} is already taken on network lab by instance g1`);
  }, 240_000);

  it('deleting the guests and the network (from a host that is not its DHCP host) leaves nothing on any host', async () => {
    for (const s of shells) s.close();
    await ok(h[2]!, ['delete', '--force', 'g1']);
    await ok(h[2]!, ['delete', '--force', 'g2']);
    await ok(h[1]!, ['network', 'rm', 'lab']);
    for (const x of h) {
      await eventually(async () => (leftovers(x, lab.id).length === 0 ? true : undefined), 30_000, `nothing of lab left on ${x.name}: ${leftovers(x, lab.id).join(', ')}`);
      expect(await networksOn(x)).toEqual([]);
    }
  }, 120_000);
});
