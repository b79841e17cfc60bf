import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DiskOwnerRecord, DISK_KEYS } from '../../src/cluster/disk-ownership-etcd.ts';
import { EtcdKv } from '../../src/cluster/etcd-kv.ts';
import { tlsFilesIn } from '../../src/cluster/pki.ts';
import { FAILOVER_KEYS, type FailoverRecord } from '../../src/app/cluster-failover.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { crashHost, type SimCluster, type SimHost, destroyKeepingLogs, listOn, ok, sharedDirCluster } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { type NfsServer, startNfsServer } from '../helpers/nfs-server.ts';
import { testGuest } from '../helpers/test-guest.ts';

/**
 * Surviving a dead host, on three simulated hosts (netns, real daemons and etcd members, the tiny guest under TCG)
 * sharing a pool: an nfs pool on a real nfs-ganesha (in its own namespace, routed to the hosts' segment through
 * the test's namespace; QEMU's own NFS client), or a shared-dir pool (one directory all hosts see: the namespaces
 * share the machine's filesystem). An
 * on-failure instance with its disk there: a host cut off from the others fences itself and ends it before its
 * lease can expire, and another host runs it; a host killed outright (daemon, QEMUs, etcd member) loses it to
 * another host within about the lease TTL. Never two QEMUs, and the disk's owner in etcd follows the instance.
 */

// The lease TTL of the simulated hosts: long enough that an etcd leader election (the cut host may be the leader)
// never costs the healthy hosts their leases (fenced at 2/3 of it), short enough for a quick test.
const TTL_S = 6;
const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait'];
const guest = testGuest();

describe.each([['nfs'], ['shared-dir']] as const)('failover of an on-failure instance on a shared pool (%s; 3 netns hosts, real etcd, tiny guest)', (poolType) => {
  let sim: SimCluster;
  let h: SimHost[];
  let kv: EtcdKv;
  let nfs: NfsServer | undefined;
  let tester = '';
  /** A host's route to the NFS server (through the test's namespace); gone with its link when that goes down. */
  const routeToNfs = (x: SimHost) => {
    if (nfs !== undefined) execFileSync('ip', ['-n', x.netns, 'route', 'replace', '10.231.8.0/24', 'via', tester]);
  };
  const shared = mkdtempSync(join(tmpdir(), 'virtnode-failover-'));
  let pool = join(shared, 'pool');
  let disk = join(pool, 'f1.disk0.qcow2');
  // Every 100 ms: how many QEMUs run the instance across all hosts (never more than one).
  let most = 0;
  let sampler: NodeJS.Timeout | undefined;
  const copies = () => h.reduce((n, x) => n + qemuPidsUnder(x.home).length, 0);
  /** The host (other than `not`) that `x` lists f1 running on. */
  const runningOn = async (x: SimHost, not: string) => (await listOn(x)).find((i) => i.name === 'f1' && i.state === 'running' && i.host !== not)?.host;
  /** When each host's live record went (its lease expired or was cut), as etcd's watch saw it. */
  const offlineAt = new Map<string, number>();
  const record = async () => {
    const e = await kv.get(FAILOVER_KEYS.record('f1'));
    return e === undefined ? undefined : (JSON.parse(e.value) as FailoverRecord);
  };
  const diskOwner = async () => {
    const e = await kv.get(DISK_KEYS.disk(disk));
    return e === undefined ? undefined : (JSON.parse(e.value) as DiskOwnerRecord);
  };

  beforeAll(async () => {
    sim = await sharedDirCluster(shared, TTL_S);
    h = sim.hosts;
    tester = sim.attachTester();
    if (poolType === 'nfs') {
      // ganesha's namespace hangs off the test's; the test's namespace routes between it and the hosts' segment.
      nfs = await startNfsServer({ hostAddress: '10.231.8.1', serverAddress: '10.231.8.2' });
      writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
      execFileSync('ip', ['-n', nfs.netns, 'route', 'add', `${h[0]!.address.split('.').slice(0, 3).join('.')}.0/24`, 'via', '10.231.8.1']);
      for (const x of h) routeToNfs(x);
      pool = `nfs://${nfs.address}${nfs.exportPath}`;
      disk = `${pool}/f1.disk0.qcow2`;
    }
    // Through h2's and h3's members: a watch on the member of the host cut off would stall without an error.
    kv = new EtcdKv({ urls: h.slice(1).map((x) => `https://${x.address}:2379`), tls: tlsFilesIn(join(h[0]!.home, 'cluster', 'tls')) });
    for (const x of h) await ok(x, ['pool', 'create', 'shared', '--type', poolType, ...(nfs === undefined ? ['--path', pool] : ['--source', nfs.source])]);
    await kv.watch('/virtnode/alive/', (e) => {
      if (e.type === 'delete') offlineAt.set(e.key.slice('/virtnode/alive/'.length), Date.now());
    });
    sampler = setInterval(() => (most = Math.max(most, copies())), 100);
  }, 180_000);

  afterAll(async () => {
    clearInterval(sampler);
    await kv?.close();
    await destroyKeepingLogs(sim, `cluster-failover-${poolType}`);
    await nfs?.stop();
    rmSync(shared, { recursive: true, force: true });
  });

  it('an on-failure VM on the shared pool is a failover candidate: its record and its disk owner are in etcd; a second writer is refused', async () => {
    await ok(h[0]!, ['launch', 'tiny', '--name', 'f1', ...LAUNCH, '--target', 'h1', '--pool', 'shared']);
    await ok(h[1]!, ['set', 'f1', 'restart=on-failure']);
    expect(qemuPidsUnder(h[0]!.home)).toHaveLength(1);
    const r = await eventually(async () => {
      const x = await record();
      return x?.policy.restart === 'on-failure' && x.running ? x : undefined;
    }, 15_000, 'failover record of f1');
    expect(r).toMatchObject({ host: 'h1', disks: [disk], instance: { name: 'f1' } });
    expect(r.seed?.files).toBeDefined();
    expect(await diskOwner()).toMatchObject({ host: 'h1', instance: 'f1' });

    // Another host's instance on the same disk: refused before QEMU opens it, naming the disk and the holder.
    await ok(h[1]!, ['create', 'thief', '--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline, '--disk', disk]);
    const refused = await h[1]!.cli(['start', 'thief']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain(`disk ${disk} is in use by instance f1 of state directory ${h[0]!.home} on host h1`);
    expect(qemuPidsUnder(h[1]!.home)).toEqual([]);

    // A standalone-style instance (restart policy no) has no record.
    await ok(h[1]!, ['set', 'f1', 'restart=no']);
    await eventually(async () => ((await record()) === undefined ? true : undefined), 15_000, 'record removed with the policy');
    await ok(h[1]!, ['set', 'f1', 'restart=on-failure']);
    await eventually(async () => ((await record())?.host === 'h1' ? true : undefined), 15_000, 'record back');
  }, 240_000);

  it('a host cut off from the others ends its candidate before its lease can expire, and another host runs it', async () => {
    const h1 = h[0]!;
    const [qemu] = qemuPidsUnder(h1.home);
    expect(qemu).toBeDefined();
    execFileSync('ip', ['-n', h1.netns, 'link', 'set', 'eth0', 'down']);
    const cut = Date.now();
    let restored = false;
    try {
      await eventually(() => (qemuPidsUnder(h1.home).length === 0 ? true : undefined), 10_000, 'h1 ends its candidate');
      const ended = Date.now() - cut;
      console.log(`fenced host ended its candidate ${ended} ms after its link went down (lease TTL ${TTL_S} s)`);
      expect(ended).toBeLessThan(TTL_S * 1000);
      // Timed by the QEMU appearing (a list waits on the cut host until its lease is gone).
      const to = await eventually(() => h.slice(1).find((x) => qemuPidsUnder(x.home).length === 1), 60_000, 'f1 started on another host');
      const back = Date.now() - cut;
      const lost = offlineAt.get('h1');
      console.log(`f1 started on ${to.name} ${back} ms after h1's link went down, ${lost === undefined ? '?' : Date.now() - lost} ms after h1's live record went (lease TTL ${TTL_S} s)`);
      // h1 ended it before its lease expired (etcd deleted its live record), as its own log says when.
      await h1.logged('"msg":"fenced: failover candidates stopped before the lease can expire"');
      const killedAt = Date.parse(/"msg":"fenced: failover candidates stopped before the lease can expire".*?"at":"([^"]+)"/.exec(h1.output())?.[1] ?? '');
      expect(lost).toBeDefined();
      // (`lost` is when the watch told this test, a little after etcd expired it.)
      expect(lost! - killedAt).toBeGreaterThan(500);
      console.log(`h1 ended f1 ${lost! - killedAt} ms before etcd expired its lease`);
      // The healthy hosts kept their leases (the cut host may have been the etcd leader).
      for (const x of h.slice(1)) expect(x.output()).not.toContain('"msg":"fenced');
      const where = await eventually(async () => runningOn(h[2]!, 'h1'), 60_000, 'f1 listed running on another host');
      expect(where).toBe(to.name);
      expect(['h2', 'h3']).toContain(where);
      expect(await diskOwner()).toMatchObject({ host: where, instance: 'f1' });
      execFileSync('ip', ['-n', h1.netns, 'link', 'set', 'eth0', 'up']);
      routeToNfs(h1);
      restored = true;
      // Back online, h1 forgets its stopped copy (the instance is the other host's now) and runs nothing.
      await eventually(async () => ((await listOn(h1)).filter((i) => i.name === 'f1').map((i) => i.host).join() === where ? true : undefined), 40_000, 'h1 forgets its copy');
      expect(qemuPidsUnder(h1.home)).toEqual([]);
      expect(most).toBe(1);
    } finally {
      if (!restored) {
        execFileSync('ip', ['-n', h1.netns, 'link', 'set', 'eth0', 'up']);
        routeToNfs(h1);
      }
    }
  }, 240_000);

  it('SIGKILL of a whole host (daemon, QEMUs, etcd member): its candidate runs again on another host within about the lease TTL', async () => {
    const owner = await eventually(async () => {
      const r = await record();
      if (r === undefined || r.failover !== undefined || !r.running) return undefined;
      return qemuPidsUnder(h.find((x) => x.name === r.host)!.home).length === 1 ? r.host : undefined;
    }, 30_000, 'record settled, f1 running on its owner');
    const dead = h.find((x) => x.name === owner)!;
    const survivors = h.filter((x) => x !== dead);
    expect(qemuPidsUnder(dead.home)).toHaveLength(1);
    const killedAt = Date.now();
    await crashHost(dead);
    const to = await eventually(() => survivors.find((x) => qemuPidsUnder(x.home).length === 1), 60_000, 'f1 started on a survivor');
    const took = Date.now() - killedAt;
    const lost = offlineAt.get(owner);
    console.log(`f1 started on ${to.name} ${took} ms after ${owner} was killed, ${lost === undefined ? '?' : Date.now() - lost} ms after its live record went (lease TTL ${TTL_S} s)`);
    const where = await eventually(async () => runningOn(survivors[0]!, owner), 60_000, 'f1 listed running on a survivor');
    expect(where).toBe(to.name);
    expect(survivors.map((x) => x.name)).toContain(where);
    expect(took).toBeLessThan((TTL_S + 10) * 1000);
    const ls = await ok(survivors[1]!, ['list']);
    expect(ls).toMatch(new RegExp(`^f1\\s+${where}\\s+vm\\s+running`, 'm'));
    expect(await diskOwner()).toMatchObject({ host: where, instance: 'f1' });
    expect(most).toBe(1);

    // The disk is never open twice: a second start on the other survivor is refused by the ownership in etcd...
    const other = survivors.find((x) => x.name !== where)!;
    await ok(other, ['create', 'thief2', '--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline, '--disk', disk]);
    const again = await other.cli(['start', 'thief2']);
    expect(again.code).toBe(4);
    expect(again.stderr).toContain(`disk ${disk} is in use by instance f1`);
    expect(again.stderr).toContain(`on host ${where}`);
    // ...and on a shared directory QEMU's image lock is the second guard (over nfs:// it has none: the ownership in
    // etcd is the only one there).
    if (poolType === 'shared-dir') {
      const lock = (() => {
        try {
          execFileSync('qemu-img', ['check', disk], { stdio: ['ignore', 'pipe', 'pipe'] });
          return '';
        } catch (e) {
          return String((e as { stderr?: Buffer }).stderr);
        }
      })();
      expect(lock).toContain('lock');
    }
    const winner = survivors.find((x) => x.name === where)!;
    await ok(winner, ['delete', '--force', 'f1']);
    await ok(other, ['delete', '--force', 'thief2']);
    if (dead !== h[1]) await ok(h[1]!, ['delete', '--force', 'thief']);
    expect(survivors.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
    expect(await record()).toBeUndefined();
  }, 240_000);
});
