import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tapName } from '../../src/network/names.ts';
import { EchoStream, linksOf, switchPortOf } from '../helpers/bridged-moves.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, createSimHosts, destroyKeepingLogs, formCluster, instanceDirOn, listOn, localRecord, ok } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { debianImage } from '../helpers/debian-image.ts';

/**
 * The test: a Debian guest on a bridged network keeps a TCP connection from the switch's segment open
 * across a live move between two simulated hosts (netns, real daemons and etcd, TCG). The guest configures its
 * address on the bridged NIC and runs an echo server from its user-data; the test streams numbered lines through
 * it before, during and after the move and checks every one came back, in order, on the same connection.
 */

const PORT = 7000;

const userData = (address: string) => `#cloud-config
write_files:
  - path: /usr/local/bin/echo-server.py
    permissions: '0755'
    content: |
      import socket, threading
      s = socket.socket()
      s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      s.bind(('', ${PORT}))
      s.listen()
      def serve(c):
          while True:
              d = c.recv(4096)
              if not d:
                  return
              c.sendall(d)
      while True:
          c, _ = s.accept()
          threading.Thread(target=serve, args=(c,), daemon=True).start()
  - path: /usr/local/bin/lan-up.sh
    permissions: '0755'
    content: |
      #!/bin/sh
      # The bridged NIC is the one without an IPv4 address (NIC 0, user-mode, has its DHCP lease by now).
      for d in $(ls /sys/class/net); do
        [ "$d" = lo ] && continue
        ip -4 addr show dev "$d" | grep -q inet || dev=$d
      done
      ip link set "$dev" up
      ip addr add ${address}/24 dev "$dev"
runcmd:
  - [/usr/local/bin/lan-up.sh]
  - [systemd-run, --unit=vn-echo, /usr/bin/python3, /usr/local/bin/echo-server.py]
`;

describe('a Debian guest on a bridged network keeps a TCP connection from the switch segment open across a live move', () => {
  let sim: SimCluster;
  let h: SimHost[];
  let stream: EchoStream | undefined;

  beforeAll(async () => {
    const image = debianImage();
    sim = await createSimHosts(2);
    h = sim.hosts;
    await Promise.all(h.map((x) => x.startDaemon()));
    for (const x of h) sim.bridgeOnSwitch(x, 'lan0');
    sim.attachTester();
    await formCluster(h);
    // In a cluster a network is defined once, for every host.
    await ok(h[0]!, ['network', 'create', 'lan', '--bridge', 'lan0']);
    for (const x of h) {
      await eventually(async () => ((await ok(x, ['network', 'ls'])).includes('lan') ? true : undefined), 20_000, `lan defined on ${x.name}`);
      await ok(x, ['image', 'import', image, '--name', 'debian-12']);
    }
  }, 300_000);
  afterAll(async () => {
    stream?.close();
    await destroyKeepingLogs(sim, 'cluster-move-bridged-debian');
  });

  it('launches, streams through the guest, moves h1 -> h2 live: nothing lost, no reset, tap and switch port follow', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    const address = `${sim.segment}.60`;
    const file = join(h1.home, 'user-data.yaml');
    writeFileSync(file, userData(address));
    const launched = Date.now();
    await ok(h1, ['launch', 'debian-12', '--name', 'deb', '--memory', '512M', '--cpu-model', 'qemu64', '--seed', 'http', '--network', 'lan', '--user-data', file, '--timeout', '600', '--target', 'h1']);
    const view = (await listOn(h1)).find((i) => i.name === 'deb')!;
    const mac = view.nics.find((n) => n.network === 'lan')!.mac;
    const tap = tapName(view.uuid, 1);
    console.log(`Debian guest ready on h1 in ${Date.now() - launched} ms`);

    stream = await eventually(() => EchoStream.open(address, PORT).catch(() => undefined), 120_000, 'the echo server in the guest');
    stream.start(20);
    await new Promise((r) => setTimeout(r, 2_000));
    expect([stream.received > 20, stream.errors]).toEqual([true, []]);
    expect(switchPortOf(sim, mac)).toBe('uh1');

    const before = stream.received;
    const out = await ok(h1, ['move', 'deb', '--to', 'h2', '--timeout', '600']);
    const match = /^Moved deb from h1 to h2 in (\d+\.\d) s, downtime (\d+) ms\n  switch-over after the source stopped: [^\n]*running \d+ ms\n$/.exec(out);
    expect(match, out).not.toBeNull();
    await eventually(() => (switchPortOf(sim, mac) === 'uh2' ? true : undefined), 5_000, 'the switch learning h2');
    await new Promise((r) => setTimeout(r, 3_000));
    await stream.stop(60_000);
    console.log(`Debian bridged move h1 -> h2: ${match![1]} s by the engine, downtime ${match![2]} ms; ${stream.received - before} lines echoed during and after, longest wait for an echo ${stream.maxGapMs} ms`);
    expect(stream.errors).toEqual([]);
    expect(stream.received).toBe(stream.sent);

    // No QEMU names anything of h1: the target boots the image's kernel from its own copy (same digest), not h1's.
    expect(qemuPidsUnder(h1.home)).toEqual([]);
    const record = localRecord(h2, 'deb') as { spec: { boot?: { kernel: string; initrd?: string } } };
    expect(record.spec.boot?.kernel.startsWith(`${h2.home}/`), record.spec.boot?.kernel).toBe(true);
    expect(existsSync(instanceDirOn(h1, 'deb'))).toBe(false);
    expect(localRecord(h1, 'deb')).toBeUndefined();
    expect(linksOf(h1.netns).some((l) => l.ifname === tap)).toBe(false);
    expect(linksOf(h2.netns).find((l) => l.ifname === tap)?.master).toBe('lan0');
    expect((await listOn(h2)).find((i) => i.name === 'deb')).toMatchObject({ host: 'h2', state: 'running' });

    stream.close();
    stream = undefined;
    await ok(h2, ['delete', '--force', 'deb']);
    expect(linksOf(h2.netns).some((l) => l.ifname === tap)).toBe(false);
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
  }, 900_000);
});
