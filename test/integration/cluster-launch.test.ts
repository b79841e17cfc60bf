import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceView } from '../../src/api/schemas.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, listOn as list, ok, requestOn, statusOn as status, tinyGuestHosts } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { testGuest } from '../helpers/test-guest.ts';

/**
 * Launching across a cluster of three simulated hosts (netns, real daemons, real etcd members on each): --target
 * and the scheduler, the instance made on the chosen host, requests about it forwarded from any host, bad
 * targets refused with nothing changed, and a host that loses its lease fencing itself.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait'];

describe('launching across a cluster of simulated hosts (netns, real daemons and etcd, the tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  beforeAll(async () => {
    sim = await tinyGuestHosts(3);
    h = sim.hosts;
  }, 120_000);
  afterAll(async () => {
    await destroyKeepingLogs(sim, 'cluster-launch');
  });

  it('standalone, --target is refused naming the field and the host lists without a HOST column', async () => {
    const r = await h[0]!.cli(['launch', 'tiny', '--name', 'x', ...LAUNCH, '--target', 'h2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: target: this host is not in a cluster: there is no host h2 to launch on');
    expect(qemuPidsUnder(h[0]!.home)).toEqual([]);
    expect(await ok(h[0]!, ['list'])).not.toContain('HOST');

    await ok(h[0]!, ['cluster', 'init', '--address', h[0]!.address, '--name', 'h1']);
    for (const [i, name] of [[1, 'h2'], [2, 'h3']] as const) {
      const token = (await ok(h[0]!, ['cluster', 'add', name])).trim();
      await ok(h[i]!, ['cluster', 'join', token, '--address', h[i]!.address]);
    }
    await eventually(async () => ((await status(h[2]!)).hosts.filter((x) => x.state === 'online').length === 3 ? true : undefined), 20_000, 'three hosts online');
  }, 120_000);

  it('--target runs the instance on that host; any host lists it with its host and forwards info to it', async () => {
    const started = Date.now();
    const out = await ok(h[0]!, ['launch', 'tiny', '--name', 'a1', ...LAUNCH, '--target', 'h2']);
    console.log(`launch --target h2 from h1: ${Date.now() - started} ms`);
    expect(out).toContain('a1 is booting.');
    expect(out).toContain('  host:        h2\n');
    expect(qemuPidsUnder(h[1]!.home)).toHaveLength(1);
    expect(qemuPidsUnder(h[0]!.home)).toEqual([]);
    for (const x of h) {
      const all = await list(x);
      expect(all.map((i) => [i.name, i.host, i.state])).toEqual([['a1', 'h2', 'running']]);
    }
    const table = await ok(h[2]!, ['list']);
    expect(table).toMatch(/^NAME\s+HOST\s+TYPE\s+STATE/);
    expect(table).toMatch(/^a1\s+h2\s+vm\s+running/m);
    const info = JSON.parse(await ok(h[2]!, ['info', 'a1', '--format', 'json'])) as InstanceView;
    expect(info).toMatchObject({ name: 'a1', host: 'h2', state: 'running', memoryMiB: 128 });
    expect(info.boot?.kernel).toBe(testGuest().kernel);
    expect(await ok(h[2]!, ['info', 'a1'])).toMatch(/^Host:\s+h2$/m);
  }, 180_000);

  it('without --target the scheduler spreads launches over the hosts with room', async () => {
    // h2 holds a1: the emptier hosts come first, by name.
    const a2 = await ok(h[2]!, ['launch', 'tiny', '--name', 'a2', ...LAUNCH]);
    expect(a2).toContain('host:        h1');
    const a3 = await ok(h[2]!, ['launch', 'tiny', '--name', 'a3', ...LAUNCH]);
    expect(a3).toContain('host:        h3');
    expect((await list(h[1]!)).map((i) => `${i.name}@${i.host}`)).toEqual(['a1@h2', 'a2@h1', 'a3@h3']);
    for (const [x, n] of [[h[0]!, 1], [h[1]!, 1], [h[2]!, 1]] as const) expect(qemuPidsUnder(x.home)).toHaveLength(n);
    // The same name is not launched twice in the cluster.
    const again = await h[0]!.cli(['launch', 'tiny', '--name', 'a1', ...LAUNCH]);
    expect(again.stderr).toContain('error: instance a1 is placed on h2 already');
  }, 180_000);

  it('a bad --target (unknown host, host without room) is a 4xx naming the field and changes nothing', async () => {
    const before = await list(h[0]!);
    const unknown = await h[0]!.cli(['launch', 'tiny', '--name', 'b1', ...LAUNCH, '--target', 'h9']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('error: target: no host h9 in the cluster');
    const full = await h[0]!.cli(['launch', 'tiny', '--name', 'b1', ...LAUNCH, '--cpus', '2', '--target', 'h2']);
    expect(full.code).toBe(4);
    expect(full.stderr).toContain('error: target: no host has room for b1 (2 CPU(s), 128 MiB): h2 (CPUs: 1 free of 2)');
    const rest = await requestOn(h[2]!, 'POST', '/instances/launch', { image: 'tiny', name: 'b1', memory: '128M', seed: 'http', wait: false, target: 'h9' });
    expect(rest.status).toBe(404);
    expect(rest.body.error).toMatchObject({ code: 'NOT_FOUND', field: 'target' });
    // A bad image on the chosen host is refused before any operation starts, and the room is given back.
    const noImage = await h[0]!.cli(['launch', 'nope', '--name', 'b1', ...LAUNCH, '--target', 'h3']);
    expect(noImage.code).not.toBe(0);
    expect(noImage.stderr).toMatch(/error: .*nope/);
    expect(await list(h[1]!)).toEqual(before);
    expect(qemuPidsUnder(h[1]!.home)).toHaveLength(1);
    // Nothing was claimed: h2 still has one CPU free, and b1's name is free.
    const fits = await h[0]!.cli(['launch', 'nope', '--name', 'b1', ...LAUNCH, '--target', 'h2']);
    expect(fits.stderr).not.toContain('placed on');
    expect(fits.stderr).not.toContain('no host has room');
  }, 120_000);

  it('stop, start and delete from any host are forwarded to the owner, and delete gives its room back', async () => {
    await ok(h[2]!, ['stop', '--force', 'a1']);
    expect(qemuPidsUnder(h[1]!.home)).toEqual([]);
    expect((await list(h[1]!)).find((i) => i.name === 'a1')?.state).toBe('stopped');
    await ok(h[0]!, ['start', 'a1']);
    expect(qemuPidsUnder(h[1]!.home)).toHaveLength(1);
    const missing = await h[0]!.cli(['stop', 'nothere']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('nothere');
    expect(await ok(h[2]!, ['delete', '--force', 'a1'])).toBe('Deleted a1\n');
    expect(qemuPidsUnder(h[1]!.home)).toEqual([]);
    expect((await list(h[0]!)).map((i) => i.name)).toEqual(['a2', 'a3']);
    // Its claim went with it: h2 has room for two vCPUs again.
    const big = await ok(h[0]!, ['launch', 'tiny', '--name', 'big', ...LAUNCH, '--cpus', '2', '--target', 'h2']);
    expect(big).toContain('host:        h2');
    await ok(h[0]!, ['delete', '--force', 'big']);
  }, 180_000);

  it('a host that loses its lease fences itself: no new work, reported; its guests keep running; lifted when the lease is back', async () => {
    const h3 = h[2]!;
    const [guest] = qemuPidsUnder(h3.home);
    expect(guest).toBeDefined();
    execFileSync('ip', ['-n', h3.netns, 'link', 'set', 'eth0', 'down']);
    const cut = Date.now();
    try {
      await eventually(() => (h3.output().includes('"msg":"fenced: cluster lease lost') ? true : undefined), 10_000, 'h3 fenced');
      console.log(`h3 fenced ${Date.now() - cut} ms after its link went down (lease TTL 3 s)`);
      const refused = await h3.cli(['launch', 'tiny', '--name', 'f1', ...LAUNCH]);
      expect(refused.code).toBe(5);
      expect(refused.stderr).toMatch(/error: launch: host h3 is fenced since \S+ \(.*\): it takes no new work until it holds its cluster lease again/);
      const ls = await h3.cli(['cluster', 'ls'], { timeoutMs: 60_000 });
      expect(ls.stdout).toMatch(/^h3 is FENCED since /);
      // Its guest was not touched.
      expect(qemuPidsUnder(h3.home)).toEqual([guest]);
      // The others see it offline and place nothing there.
      await eventually(async () => ((await status(h[0]!)).hosts.find((x) => x.name === 'h3')?.state === 'offline' ? true : undefined), 20_000, 'h3 offline');
      const offline = await h[0]!.cli(['launch', 'tiny', '--name', 'f2', ...LAUNCH, '--target', 'h3']);
      expect(offline.code).toBe(4);
      expect(offline.stderr).toContain('error: target: host h3 is offline (it holds no cluster lease)');
    } finally {
      execFileSync('ip', ['-n', h3.netns, 'link', 'set', 'eth0', 'up']);
    }
    await eventually(() => (h3.output().includes('"msg":"fence lifted') ? true : undefined), 30_000, 'fence lifted');
    const s = await status(h3);
    expect(s.fenced).toBeUndefined();
    await eventually(async () => ((await status(h[0]!)).hosts.find((x) => x.name === 'h3')?.state === 'online' ? true : undefined), 20_000, 'h3 online again');
    expect(qemuPidsUnder(h3.home)).toEqual([guest]);
    for (const name of ['a2', 'a3']) await ok(h[1]!, ['delete', '--force', name]);
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
  }, 180_000);
});
