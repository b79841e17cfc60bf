import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationView } from '../../src/api/schemas.ts';
import type { Claim } from '../../src/cluster/placement.ts';
import { VIRTNODE_BIN, qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, etcdGet, formCluster, instanceDirOn, listOn, localRecord, ok, requestOn, tinyGuestHosts } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';

/**
 * A launch that runs on another host than the one asked (--target h2 asked on h1): the asking host's operation
 * shows every phase of the launch there as a local launch shows them, as they come; cancelling it on the asking
 * host (DELETE /operations/ID, or Ctrl-C of the CLI) cancels it there, with nothing left and its claim given back.
 * Each launch is held for a while after its seed is made (VIRTNODE_DELAYPOINT), a window to look and to cancel in.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait'];
const HOLD_MS = 4000;
const PHASES = ['placed', 'image', 'disk', 'seed', 'booting'];

const phasesIn = (out: string) => [...out.matchAll(/^\[\s*[\d.]+ s\] (\S+)/gm)].map((m) => m[1]);

describe('a launch forwarded to another host: its phases followed and its cancel carried there (netns hosts, the tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  beforeAll(async () => {
    sim = await tinyGuestHosts(2, { cpuOvercommit: 4, env: { VIRTNODE_DELAYPOINT: `launch.after-seed:${HOLD_MS}` } });
    h = sim.hosts;
    await formCluster(h);
  }, 180_000);
  afterAll(async () => {
    await destroyKeepingLogs(sim, 'cluster-launch-forward');
  });

  const launchOn = async (asked: SimHost, name: string): Promise<string> => {
    const r = await requestOn(asked, 'POST', '/instances/launch', { image: 'tiny', name, memory: '128M', seed: 'http', wait: false, target: 'h2' });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    return r.body.id!;
  };
  const operation = async (x: SimHost, id: string, wait = 0): Promise<OperationView> => (await requestOn(x, 'GET', `/operations/${id}?wait=${wait}`)).body as unknown as OperationView;
  /** Resolves once the asking host's operation shows the seed made on h2 (the launch is then held there). */
  const atSeed = (id: string) => eventually(async () => ((await operation(h[0]!, id)).progress.entries.some((e) => e.phase === 'seed') ? true : undefined), 60_000, 'seed phase shown on h1');

  /** Nothing of `name` on h2 (record, directory, QEMU beyond `qemus`) and no claim in etcd. */
  function nothingLeft(name: string, qemus: number): void {
    expect(localRecord(h[1]!, name)).toBeUndefined();
    expect(existsSync(instanceDirOn(h[1]!, name))).toBe(false);
    expect(qemuPidsUnder(h[1]!.home)).toHaveLength(qemus);
    expect(etcdGet<Claim>(h[0]!, `/virtnode/claims/${name}`)).toBeUndefined();
  }

  /** The CLI on a host, which must succeed: its progress lines (stderr) and its output. */
  const launched = async (x: SimHost, args: string[]): Promise<string> => {
    const r = await x.cli(['launch', 'tiny', ...LAUNCH, ...args], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    return r.stderr + r.stdout;
  };

  it('the asking host shows every phase of the launch on h2 as a local launch does, as they come', async () => {
    const local = await launched(h[1]!, ['--name', 'l1', '--target', 'h2']);
    expect(phasesIn(local)).toEqual(PHASES);
    const forwarded = await launched(h[0]!, ['--name', 'f1', '--target', 'h2']);
    expect(phasesIn(forwarded)).toEqual(PHASES);
    expect(forwarded).toMatch(/^\[\s*[\d.]+ s\] placed\s+on h2 \(--target\)$/m);
    expect(forwarded).toMatch(/^\[\s*[\d.]+ s\] disk\s+\S+ \(overlay on tiny\) \(on h2\)$/m);
    expect(forwarded).toMatch(/^\[\s*[\d.]+ s\] booting\s+QEMU pid \d+ \(on h2\)$/m);
    expect(forwarded).toContain('  host:        h2\n');

    // Through the REST API of h1: the phases arrive while the launch still runs there.
    const id = await launchOn(h[0]!, 'f2');
    await atSeed(id);
    const during = await operation(h[0]!, id);
    expect(during.status).toBe('running');
    expect(during.progress.entries.map((e) => e.phase)).toEqual(['placed', 'image', 'disk', 'seed']);
    const done = await operation(h[0]!, id, 120);
    expect(done.status, JSON.stringify(done)).toBe('succeeded');
    expect(done.progress.entries.map((e) => e.phase)).toEqual(PHASES);
    expect(qemuPidsUnder(h[1]!.home)).toHaveLength(3);
    expect(qemuPidsUnder(h[0]!.home)).toEqual([]);
  }, 240_000);

  it('DELETE /operations/ID on the asking host cancels the launch on h2: nothing left there, claim given back', async () => {
    const id = await launchOn(h[0]!, 'c1');
    await atSeed(id);
    expect(etcdGet<Claim>(h[0]!, '/virtnode/claims/c1')).toMatchObject({ host: 'h2' });
    expect(existsSync(instanceDirOn(h[1]!, 'c1'))).toBe(true);
    const cancel = await requestOn(h[0]!, 'DELETE', `/operations/${id}`);
    expect(cancel.status).toBe(202);
    const done = await operation(h[0]!, id, 60);
    expect(done.status, JSON.stringify(done)).toBe('cancelled');
    expect(done.error?.message).toContain(`operation ${id} was cancelled`);
    expect(done.progress.entries.map((e) => e.phase)).not.toContain('booting');
    nothingLeft('c1', 3);
    expect((await listOn(h[0]!)).map((i) => i.name)).toEqual(['f1', 'f2', 'l1']);
  }, 120_000);

  it('Ctrl-C of `virtnode launch --target h2` on h1 cancels it on h2 too', async () => {
    const child = spawn(VIRTNODE_BIN, ['launch', 'tiny', '--name', 'c2', ...LAUNCH, '--target', 'h2'], { env: { ...process.env, VIRTNODE_HOME: h[0]!.home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      await eventually(() => (/\] seed .*\(on h2\)$/m.test(out) ? true : undefined), 60_000, 'seed phase shown by the CLI');
      child.kill('SIGINT');
      const code = await exited;
      expect(code, out).not.toBe(0);
      expect(out).toMatch(/^error: operation \S+ was cancelled/m);
    } finally {
      child.kill('SIGKILL');
    }
    nothingLeft('c2', 3);
    // The room is there again: the name launches on h2 now.
    expect(await ok(h[0]!, ['launch', 'tiny', '--name', 'c2', ...LAUNCH, '--target', 'h2'])).toContain('c2 is booting.');
    for (const name of ['c2', 'f1', 'f2', 'l1']) await ok(h[0]!, ['delete', '--force', name]);
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
  }, 120_000);
});
