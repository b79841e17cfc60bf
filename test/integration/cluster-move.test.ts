import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Claim, HostUsage } from '../../src/cluster/placement.ts';
import { QmpConnection } from '../../src/qmp/connection.ts';
import { queryMigrate } from '../../src/qmp/migration.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, etcdGet, formCluster, instanceDirOn, listOn, localRecord, ok, requestOn, statusOn, tinyGuestHosts } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { SerialShell } from '../helpers/serial-shell.ts';

/**
 * `virtnode move NAME --to HOST` across a cluster of three simulated hosts (netns, real daemons and etcd members,
 * the tiny guest): refusals that change nothing, a live move asked on a third host (the guest's uptime and a
 * counter it keeps go on), requests following the instance to its new host, the source left with nothing, and a
 * move whose target QEMU dies leaving the guest where it was.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait', '--cpu-model', 'qemu64'];


describe('moving running instances between the hosts of a cluster (netns, real daemons and etcd, the tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  const shells: SerialShell[] = [];
  /** The guest's console on the host it runs on (the console socket takes one client at a time). */
  let console2: SerialShell | undefined;
  beforeAll(async () => {
    sim = await tinyGuestHosts(3);
    h = sim.hosts;
  }, 120_000);
  afterAll(async () => {
    for (const s of shells) s.close();
    await destroyKeepingLogs(sim, 'cluster-move');
  });

  it('standalone, move is refused naming the field; then the cluster forms', async () => {
    const r = await h[0]!.cli(['move', 'x', '--to', 'h2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: host: this host is not in a cluster: there is no host h2 to move to');
    await formCluster(h);
  }, 120_000);

  it('refusals name the field and change nothing: the owner itself, an unknown host, no room, --offline of a running VM', async () => {
    await ok(h[0]!, ['launch', 'tiny', '--name', 'm1', ...LAUNCH, '--target', 'h1']);
    const [pid] = qemuPidsUnder(h[0]!.home);
    expect(pid).toBeDefined();
    // A stopped guest as large as h2 fills h2's room.
    const h2cpus = (await statusOn(h[0]!)).hosts.find((x) => x.name === 'h2')!.capacity!.cpus;
    await ok(h[0]!, ['launch', 'tiny', '--name', 'big', ...LAUNCH, '--cpus', String(h2cpus), '--target', 'h2']);
    await ok(h[0]!, ['stop', '--force', 'big']);

    const self = await h[1]!.cli(['move', 'm1', '--to', 'h1']);
    expect(self.code).toBe(2);
    expect(self.stderr).toContain('error: host: m1 runs on h1 already');
    const unknown = await h[1]!.cli(['move', 'm1', '--to', 'h9']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('error: host: no host h9 in the cluster');
    const full = await h[2]!.cli(['move', 'm1', '--to', 'h2']);
    expect(full.code).toBe(4);
    expect(full.stderr).toContain(`error: host: h2 has no room for m1 (1 CPU(s), 128 MiB): CPUs: 0 free of ${h2cpus}`);
    const running = await h[0]!.cli(['move', 'm1', '--to', 'h3', '--offline']);
    expect(running.code).toBe(5);
    expect(running.stderr).toContain('error: m1 is running; --offline moves only a stopped, defined or crashed VM');
    const badTimeout = await h[0]!.cli(['move', 'm1', '--to', 'h3', '--timeout', 'soon']);
    expect(badTimeout.code).toBe(2);
    for (const limit of ['0', '60001', '2.5', 'fast']) {
      const badLimit = await h[0]!.cli(['move', 'm1', '--to', 'h3', '--downtime-limit', limit]);
      expect(badLimit.code).toBe(2);
      expect(badLimit.stderr).toContain(`error: --downtime-limit: "${limit}" is not a whole number of milliseconds from 1 to 60000`);
    }

    expect(qemuPidsUnder(h[0]!.home)).toEqual([pid]);
    for (const x of [h[1]!, h[2]!]) expect(existsSync(instanceDirOn(x, 'm1'))).toBe(false);
    expect(etcdGet<Claim>(h[0]!, '/virtnode/claims/m1')?.host).toBe('h1');
    await ok(h[2]!, ['delete', '--force', 'big']);
  }, 240_000);

  it('moves a running guest live from h1 to h2 when asked on h3: no reboot, the claim and its room follow, nothing left on h1', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    const shell = await SerialShell.whenReady(instanceDirOn(h1, 'm1'), 120_000);
    shells.push(shell);
    await shell.run('echo moved-with-me > /tmp/marker; (i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 1; done) &');
    await new Promise((r) => setTimeout(r, 2_500));
    const before = await shell.run('cat /proc/uptime /tmp/count');
    const [uptimeBefore, countBefore] = before.output.trim().split(/\s+/).filter((x) => /^\d+(\.\d+)?$/.test(x)).map(Number);
    const uuid = (await listOn(h1)).find((i) => i.name === 'm1')!.uuid;
    const usage1 = etcdGet<HostUsage>(h1, '/virtnode/usage/h1')!;
    await ok(h1, ['set', 'm1', 'autostart=true']);

    const started = Date.now();
    const out = await ok(h3, ['move', 'm1', '--to', 'h2', '--downtime-limit', '100']);
    const wallMs = Date.now() - started;
    const match = /^Moved m1 from h1 to h2 in (\d+\.\d) s, downtime (\d+) ms\n  switch-over after the source stopped: [^\n]*running \d+ ms\n$/.exec(out);
    expect(match, out).not.toBeNull();
    console.log(`move h1 -> h2 (asked on h3): ${wallMs} ms wall, ${match![1]} s by the engine, downtime ${match![2]} ms`);

    // The source has nothing left: no QEMU, no directory, no record.
    expect(qemuPidsUnder(h1.home)).toEqual([]);
    expect(existsSync(instanceDirOn(h1, 'm1'))).toBe(false);
    expect(localRecord(h1, 'm1')).toBeUndefined();
    expect(qemuPidsUnder(h2.home)).toHaveLength(1);
    // The guest's SSH host keys (for exec and shell) are known on h2 at its forwarded port, no longer on h1.
    const knownHosts = (x: SimHost) => (existsSync(join(x.home, 'ssh', 'known_hosts')) ? readFileSync(join(x.home, 'ssh', 'known_hosts'), 'utf8') : '');
    const sshPort = (localRecord(h2, 'm1') as { spec: { ssh?: { hostPort?: number } } }).spec.ssh?.hostPort;
    expect(knownHosts(h2)).toMatch(new RegExp(`^\\[127\\.0\\.0\\.1\\]:${sshPort} .* virtnode:m1$`, 'm'));
    expect(knownHosts(h1)).not.toContain('virtnode:m1');
    // Every host lists it on h2, running, the same VM.
    for (const x of h) {
      const m1 = (await listOn(x)).find((i) => i.name === 'm1');
      expect([m1?.host, m1?.state, m1?.uuid, m1?.autostart]).toEqual(['h2', 'running', uuid, true]);
    }
    const claim = etcdGet<Claim>(h1, '/virtnode/claims/m1')!;
    expect(claim.host).toBe('h2');
    // The move's mark on the claim (failover leaves a marked instance to its move) went with the claim's move.
    expect(claim.moving).toBeUndefined();
    const [after1, after2] = [etcdGet<HostUsage>(h1, '/virtnode/usage/h1')!, etcdGet<HostUsage>(h1, '/virtnode/usage/h2')!];
    expect(after1.cpus).toBe(usage1.cpus - 1);
    expect(after1.memoryBytes).toBe(usage1.memoryBytes - 128 * 1024 * 1024);
    expect(after2).toMatchObject({ cpus: 1, memoryBytes: 128 * 1024 * 1024, instances: 1 });

    // The guest did not reboot: its uptime and its counter went on, its memory is the same.
    const there = await SerialShell.open(instanceDirOn(h2, 'm1'));
    shells.push(there);
    console2 = there;
    const afterMove = await there.run('cat /proc/uptime /tmp/count /tmp/marker');
    expect(afterMove.output).toContain('moved-with-me');
    const [uptimeAfter, countAfter] = afterMove.output.trim().split(/\s+/).filter((x) => /^\d+(\.\d+)?$/.test(x)).map(Number);
    expect(uptimeAfter).toBeGreaterThan(uptimeBefore!);
    expect(countAfter).toBeGreaterThan(countBefore!);
    console.log(`guest uptime ${uptimeBefore} s -> ${uptimeAfter} s, counter ${countBefore} -> ${countAfter}`);

    // info from the old owner is answered by the new one.
    const info = JSON.parse(await ok(h1, ['info', 'm1', '--format', 'json'])) as { host: string; state: string; pid: number };
    expect(info).toMatchObject({ host: 'h2', state: 'running', pid: qemuPidsUnder(h2.home)[0] });
  }, 300_000);

  it("a move whose target QEMU is killed leaves the guest running on its source, the claim unchanged, nothing on the target", async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    const [pid] = qemuPidsUnder(h2.home);
    // Slowed down (1 MiB/s for the memory): an idle tiny guest's whole move takes less than a second otherwise.
    const move = h2.cli(['move', 'm1', '--to', 'h1', '--bandwidth', '1M'], { timeoutMs: 180_000 });
    let killed: number | undefined;
    const deadline = Date.now() + 60_000;
    while (killed === undefined && Date.now() < deadline) {
      const [incoming] = qemuPidsUnder(h1.home);
      if (incoming !== undefined) {
        // Once the move is under way (the target prepared, the source measuring or sending), not at its start-up.
        await new Promise((r) => setTimeout(r, 700));
        process.kill(incoming, 'SIGKILL');
        killed = incoming;
      } else await new Promise((r) => setTimeout(r, 20));
    }
    expect(killed).toBeDefined();
    const r = await move;
    expect(r.code).not.toBe(0);
    console.log(`failed move: exit ${r.code}: ${r.stderr.trim()}`);
    expect(r.stderr).toMatch(/^error: the move of m1 to h1 failed while \w+; m1 keeps running on h2: /m);
    expect(qemuPidsUnder(h2.home)).toEqual([pid]);
    await eventually(() => (qemuPidsUnder(h1.home).length === 0 && !existsSync(instanceDirOn(h1, 'm1')) ? true : undefined), 15_000, 'nothing left on h1');
    expect(localRecord(h1, 'm1')).toBeUndefined();
    // The claim unchanged, the move's mark gone with the move's undoing.
    const kept = etcdGet<Claim>(h1, '/virtnode/claims/m1');
    expect([kept?.host, kept?.moving]).toEqual(['h2', undefined]);
    const still = await console2!.run('cat /tmp/marker');
    expect(still.output).toContain('moved-with-me');
    expect((await listOn(h1)).find((i) => i.name === 'm1')).toMatchObject({ host: 'h2', state: 'running' });
  }, 240_000);

  it('over REST on the owner: a bad host is a 4xx naming the field; a started move, cancelled, leaves the guest where it was', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    const [pid] = qemuPidsUnder(h2.home);
    const bad = await requestOn(h2, 'POST', '/instances/m1/move', { host: 'h9' });
    expect(bad.status).toBe(404);
    expect(bad.body.error).toMatchObject({ code: 'NOT_FOUND', field: 'host', message: 'host: no host h9 in the cluster' });
    for (const downtimeLimitMs of [0, 60_001]) {
      const badLimit = await requestOn(h2, 'POST', '/instances/m1/move', { host: 'h1', downtimeLimitMs });
      expect(badLimit.status).toBe(400);
      expect(badLimit.body.error).toMatchObject({ code: 'INVALID', field: 'body/downtimeLimitMs', message: `body/downtimeLimitMs: ${downtimeLimitMs} is out of range: use 1 to 60000` });
    }
    expect(qemuPidsUnder(h2.home)).toEqual([pid]);
    // Slowed down, so the cancel comes before the switch-over (from then on a cancel is too late).
    const started = await requestOn(h2, 'POST', '/instances/m1/move', { host: 'h1', bandwidthMiBs: 1, downtimeLimitMs: 700 });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ kind: 'move', target: 'instances/m1' });
    // The limit asked for is QEMU's own for this migration (read on the source's second monitor).
    const parameters = await eventually(async () => {
      const qmp = await QmpConnection.connect(join(instanceDirOn(h2, 'm1'), 'qmp-query.sock'), { timeoutMs: 5_000 });
      try {
        const [migration, params] = [await queryMigrate(qmp), await qmp.execute<{ 'downtime-limit': number; 'max-bandwidth': number }>('query-migrate-parameters')];
        return migration.status === 'active' ? params : undefined;
      } finally {
        qmp.close();
      }
    }, 30_000, 'the migration active on h2');
    expect([parameters['downtime-limit'], parameters['max-bandwidth']]).toEqual([700, 1024 * 1024]);
    const cancel = await requestOn(h2, 'DELETE', `/operations/${started.body.id}`);
    expect(cancel.status).toBe(202);
    const done = await requestOn(h2, 'GET', `/operations/${started.body.id}/wait?timeout=60`);
    console.log(`cancelled move: ${JSON.stringify(done.body['error'] ?? done.body['status'])}`);
    expect(done.body['status']).toBe('cancelled');
    expect((done.body['error'] as { message: string }).message).toMatch(/^the move of m1 to h1 was cancelled( while \w+)?; m1 keeps running on h2: /);
    expect(qemuPidsUnder(h2.home)).toEqual([pid]);
    await eventually(() => (qemuPidsUnder(h1.home).length === 0 && !existsSync(instanceDirOn(h1, 'm1')) ? true : undefined), 15_000, 'nothing left on h1');
    const kept = etcdGet<Claim>(h1, '/virtnode/claims/m1');
    expect([kept?.host, kept?.moving]).toEqual(['h2', undefined]);
    expect((await console2!.run('cat /tmp/marker')).output).toContain('moved-with-me');
  }, 120_000);

  it('an offline target is refused; stop and delete from the old owner go to the new one', async () => {
    const [h1, h2, h3] = h as [SimHost, SimHost, SimHost];
    await h3.stopDaemon();
    await eventually(async () => ((await statusOn(h1)).hosts.find((x) => x.name === 'h3')?.state === 'offline' ? true : undefined), 20_000, 'h3 offline');
    const offline = await h1.cli(['move', 'm1', '--to', 'h3']);
    expect(offline.code).toBe(4);
    expect(offline.stderr).toContain('error: host: h3 is offline (it holds no cluster lease)');
    expect(qemuPidsUnder(h2.home)).toHaveLength(1);

    await ok(h1, ['stop', '--force', 'm1']);
    expect(qemuPidsUnder(h2.home)).toEqual([]);
    expect(await ok(h1, ['delete', '--force', 'm1'])).toBe('Deleted m1\n');
    expect(etcdGet(h1, '/virtnode/claims/m1')).toBeUndefined();
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
  }, 120_000);
});
