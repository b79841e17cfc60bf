import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Claim } from '../../src/cluster/placement.ts';
import { tapName } from '../../src/network/names.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, etcdGet, formCluster, instanceDirOn, listOn, localRecord, ok, requestOn, tinyGuestHosts } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { EchoStream, linksOf, switchPortOf } from '../helpers/bridged-moves.ts';
import { SerialShell } from '../helpers/serial-shell.ts';

/**
 * Moves of a VM whose NIC is on a bridged network (`network create lan --bridge lan0`), across simulated hosts
 * whose bridges lan0 share the switch's L2 segment: a TCP connection from the switch's segment to a listener in
 * the guest stays open and loses nothing across a move whose target QEMU is killed and then across a live move;
 * the target gets a tap on the same bridge with the same MAC, the source's tap goes, the switch learns the new
 * port (also with no traffic at all: QEMU announces the guest); a host whose network of that name is on another
 * bridge is refused naming nics. Then an offline move.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait', '--cpu-model', 'qemu64', '--network', 'lan'];
const PORT = 7000;

describe('moving a VM on a bridged network between simulated hosts (netns, real daemons and etcd, the tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  const shells: SerialShell[] = [];
  let stream: EchoStream | undefined;
  let uuid = '';
  let mac = '';
  let guestAddress = '';
  const tapOf = () => tapName(uuid, 1);

  beforeAll(async () => {
    sim = await tinyGuestHosts(3);
    h = sim.hosts;
    sim.bridgeOnSwitch(h[0]!, 'lan0');
    sim.bridgeOnSwitch(h[1]!, 'lan0');
    // h3 has no lan0 (only a bridge of another name): moves there are refused.
    sim.bridgeOnSwitch(h[2]!, 'lan1');
    sim.attachTester();
    guestAddress = `${sim.segment}.50`;
    // Made before h1 joins a cluster, quiet stays h1's own network (one made in a cluster is the cluster's).
    await ok(h[0]!, ['network', 'create', 'quiet', '--isolated', '--subnet', '192.168.77.0/24']);
    await formCluster(h);
    // In a cluster a network is defined once, for every host.
    await ok(h[0]!, ['network', 'create', 'lan', '--bridge', 'lan0']);
    for (const x of h) await eventually(async () => ((await ok(x, ['network', 'ls'])).includes('lan') ? true : undefined), 20_000, `lan defined on ${x.name}`);
  }, 180_000);
  afterAll(async () => {
    stream?.close();
    for (const s of shells) s.close();
    await destroyKeepingLogs(sim, 'cluster-move-bridged');
  });

  it('an isolated network\'s NIC is refused naming nics; a guest on the bridged network answers TCP from the switch segment; a host without the bridge of lan is refused naming nics, nothing made there', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    // An isolated network of this host only (its subnet, DHCP, DNS): its NICs never move, whatever the target has.
    await ok(h1, ['launch', 'tiny', '--name', 'iso', ...LAUNCH.slice(0, -2), '--network', 'quiet', '--target', 'h1']);
    const iso = await h3.cli(['move', 'iso', '--to', 'h2']);
    expect([iso.code, iso.stderr]).toEqual([11, expect.stringContaining('error: nics: NIC 1 is on the isolated network quiet, whose addresses, DHCP and segment belong to this host; only NICs on bridged networks and on networks of the whole cluster move')]);
    expect([existsSync(instanceDirOn(h2, 'iso')), qemuPidsUnder(h2.home)]).toEqual([false, []]);
    await ok(h1, ['delete', '--force', 'iso']);
    await ok(h1, ['network', 'rm', 'quiet']);

    await ok(h1, ['launch', 'tiny', '--name', 'web', ...LAUNCH, '--target', 'h1']);
    const view = (await listOn(h1)).find((i) => i.name === 'web')!;
    uuid = view.uuid;
    mac = view.nics.find((n) => n.network === 'lan')!.mac;
    expect(view.nics.map((n) => [n.index, n.network])).toEqual([[0, 'user'], [1, 'lan']]);
    expect(linksOf(h1.netns).find((l) => l.ifname === tapOf())?.master).toBe('lan0');

    const shell = await SerialShell.whenReady(instanceDirOn(h1, 'web'), 120_000);
    shells.push(shell);
    const dev = (await shell.run(`for d in /sys/class/net/*; do [ "$(cat $d/address)" = "${mac}" ] && echo "dev=\${d##*/}"; done`)).output.match(/dev=(\w+)/)?.[1];
    expect(dev).toBeDefined();
    await shell.run(`ip link set ${dev} up && ip addr add ${guestAddress}/24 dev ${dev} && (nc -ll -p ${PORT} -e cat &)`);
    stream = await eventually(() => EchoStream.open(guestAddress, PORT).catch(() => undefined), 30_000, 'the guest listening');
    stream.start(20);
    await new Promise((r) => setTimeout(r, 1_000));
    expect([stream.received > 10, stream.errors]).toEqual([true, []]);
    expect(switchPortOf(sim, mac)).toBe('uh1');

    const r = await h3.cli(['move', 'web', '--to', 'h3']);
    expect(r.code).toBe(11);
    expect(r.stderr).toContain('error: nics: NIC 1 is on network lan, bridged to lan0, which does not exist on host h3');
    expect(existsSync(instanceDirOn(h3, 'web'))).toBe(false);
    expect(qemuPidsUnder(h3.home)).toEqual([]);
    expect(linksOf(h3.netns).some((l) => l.ifname === tapOf())).toBe(false);
  }, 240_000);

  it("a move whose target QEMU is killed leaves the guest and its tap on the source, no tap on the target, and the TCP connection open", async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    const [pid] = qemuPidsUnder(h1.home);
    // Slowed down (1 MiB/s): an idle tiny guest's move is over in under a second, before the kill could land.
    const move = h1.cli(['move', 'web', '--to', 'h2', '--bandwidth', '1M'], { timeoutMs: 180_000 });
    let killed: number | undefined;
    let tapOnTarget = false;
    const deadline = Date.now() + 60_000;
    while (killed === undefined && Date.now() < deadline) {
      const [incoming] = qemuPidsUnder(h2.home);
      if (incoming !== undefined) {
        // The incoming QEMU opened its tap on h2's lan0 before it started.
        tapOnTarget = linksOf(h2.netns).find((l) => l.ifname === tapOf())?.master === 'lan0';
        await new Promise((r) => setTimeout(r, 700));
        process.kill(incoming, 'SIGKILL');
        killed = incoming;
      } else await new Promise((r) => setTimeout(r, 20));
    }
    expect([killed !== undefined, tapOnTarget]).toEqual([true, true]);
    const r = await move;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^error: the move of web to h2 failed while \w+; web keeps running on h1: /m);
    expect(qemuPidsUnder(h1.home)).toEqual([pid]);
    await eventually(() => (qemuPidsUnder(h2.home).length === 0 && !existsSync(instanceDirOn(h2, 'web')) ? true : undefined), 15_000, 'nothing left on h2');
    expect(linksOf(h2.netns).some((l) => l.ifname === tapOf())).toBe(false);
    expect(linksOf(h1.netns).find((l) => l.ifname === tapOf())?.master).toBe('lan0');
    const before = stream!.received;
    await new Promise((r) => setTimeout(r, 1_000));
    expect(stream!.received).toBeGreaterThan(before);
    expect(stream!.errors).toEqual([]);
  }, 240_000);

  it('a move cancelled over REST once the target made its tap leaves no tap there; the connection goes on', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    const started = await requestOn(h1, 'POST', '/instances/web/move', { host: 'h2', bandwidthMiBs: 1 });
    expect(started.status).toBe(202);
    await eventually(() => (linksOf(h2.netns).some((l) => l.ifname === tapOf()) ? true : undefined), 30_000, 'the tap on h2');
    expect((await requestOn(h1, 'DELETE', `/operations/${started.body.id}`)).status).toBe(202);
    const done = await requestOn(h1, 'GET', `/operations/${started.body.id}/wait?timeout=60`);
    expect(done.body['status']).toBe('cancelled');
    await eventually(() => (qemuPidsUnder(h2.home).length === 0 && !existsSync(instanceDirOn(h2, 'web')) ? true : undefined), 15_000, 'nothing left on h2');
    expect(linksOf(h2.netns).some((l) => l.ifname === tapOf())).toBe(false);
    expect(linksOf(h1.netns).find((l) => l.ifname === tapOf())?.master).toBe('lan0');
    const before = stream!.received;
    await new Promise((r) => setTimeout(r, 1_000));
    expect([stream!.received > before, stream!.errors]).toEqual([true, []]);
  }, 120_000);

  it('moves live from h1 to h2: the TCP connection loses nothing, the tap is on h2 with the same MAC behind it, none on h1, the switch learns the new port', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    const before = stream!.received;
    const started = Date.now();
    const out = await ok(h1, ['move', 'web', '--to', 'h2']);
    const match = /^Moved web from h1 to h2 in (\d+\.\d) s, downtime (\d+) ms\n  switch-over after the source stopped: [^\n]*running \d+ ms\n$/.exec(out);
    expect(match, out).not.toBeNull();
    const movedAt = Date.now();
    // The switch knows the guest's MAC behind h2's port at once (QEMU announces the guest after the switch-over).
    const port = await eventually(() => (switchPortOf(sim, mac) === 'uh2' ? 'uh2' : undefined), 5_000, 'the switch learning h2');
    const learnedMs = Date.now() - movedAt;
    await new Promise((r) => setTimeout(r, 2_000));
    await stream!.stop(30_000);
    console.log(`bridged move h1 -> h2: ${Date.now() - started - 2_000} ms wall, ${match![1]} s by the engine, downtime ${match![2]} ms; TCP: ${stream!.received - before} lines echoed during and after, longest wait for an echo ${stream!.maxGapMs} ms; switch on ${port} ${learnedMs} ms after the move returned`);
    expect(stream!.errors).toEqual([]);
    expect(stream!.received).toBe(stream!.sent);
    expect(stream!.received - before).toBeGreaterThan(100);

    expect(qemuPidsUnder(h1.home)).toEqual([]);
    expect(existsSync(instanceDirOn(h1, 'web'))).toBe(false);
    expect(localRecord(h1, 'web')).toBeUndefined();
    expect(linksOf(h1.netns).some((l) => l.ifname === tapOf())).toBe(false);
    expect(linksOf(h2.netns).find((l) => l.ifname === tapOf())?.master).toBe('lan0');
    expect(etcdGet<Claim>(h1, '/virtnode/claims/web')?.host).toBe('h2');
    const there = await SerialShell.open(instanceDirOn(h2, 'web'));
    shells.push(there);
    expect((await there.run(`cat /sys/class/net/*/address`)).output).toContain(mac);
  }, 240_000);

  it('moves live back to h1 with no traffic at all: the switch learns h1 from QEMU announcing the guest', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    stream!.close();
    stream = undefined;
    expect(switchPortOf(sim, mac)).toBe('uh2');
    expect(await ok(h2, ['move', 'web', '--to', 'h1'])).toMatch(/^Moved web from h2 to h1 in /);
    const movedAt = Date.now();
    // Nothing talks to the guest and the tiny guest sends nothing by itself: only the announcement tells the switch.
    await eventually(() => (switchPortOf(sim, mac) === 'uh1' ? true : undefined), 3_000, 'the switch learning h1');
    console.log(`switch on uh1 ${Date.now() - movedAt} ms after the move returned, with no traffic`);
    expect(linksOf(h2.netns).some((l) => l.ifname === tapOf())).toBe(false);
    expect(linksOf(h1.netns).find((l) => l.ifname === tapOf())?.master).toBe('lan0');
  }, 120_000);

  it('moves offline once stopped: refused to h3 naming nics, then the tap is made on h2 at its start, none left on h1', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    await ok(h1, ['stop', '--force', 'web']);
    expect(linksOf(h1.netns).some((l) => l.ifname === tapOf())).toBe(false);
    const refused = await h3.cli(['move', 'web', '--to', 'h3']);
    expect(refused.code).toBe(11);
    expect(refused.stderr).toContain('error: nics: NIC 1 is on network lan, bridged to lan0, which does not exist on host h3');
    expect(await ok(h1, ['move', 'web', '--to', 'h2'])).toMatch(/^Moved web from h1 to h2 in \d+\.\d s, offline/);
    expect(localRecord(h1, 'web')).toBeUndefined();
    await ok(h2, ['start', 'web']);
    expect(linksOf(h2.netns).find((l) => l.ifname === tapOf())?.master).toBe('lan0');
    expect(linksOf(h1.netns).some((l) => l.ifname === tapOf())).toBe(false);
    await ok(h2, ['delete', '--force', 'web']);
    expect(linksOf(h2.netns).some((l) => l.ifname === tapOf())).toBe(false);
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
  }, 240_000);
});
