/**
 * Benchmark: a live move of the tiny guest (1 GiB and 8 KiB of memory: see MEMORY_MIB) between two "hosts" (network namespaces joined by a
 * veth), idle and busy (a loop rewriting 64 MiB of tmpfs with changing random bytes without pause), by virtnode's
 * migration engine and by hand (a second QEMU with the same command line and `-incoming tcp:`, raw QMP strings on
 * both monitors), in one run, interleaved: the guest goes back and forth, alternating who moves it. Reports
 * medians and ratios of the downtime (source STOP event to the target running, both on this machine's clock), the
 * migration time (`migrate` to the target running) and the total time (virtnode: from the first step, its
 * dirty-rate measurement included, which runs alongside the target's preparation; by hand: from spawning the
 * target QEMU), where the downtime goes (source stop to its completion, the destination still loading, the
 * control path to `cont`), and virtnode's predictions (from the
 * bandwidth cap, and refined from the migration's first second) against its measured migration time.
 * BENCH_BASELINE=DIR adds a third contender in the same run: the engine of another checkout of virtnode (e.g. a
 * `git worktree` of the previous commit), so a change to the engine is measured before/after side by side;
 * BENCH_ALSO_LIMIT_MS=N and BENCH_ALSO_DIRTY_RATE_S=N add this engine with another downtime-limit or dirty-rate
 * sample (0: none). Every contender moves the guest once per round, back to back, in an order that rotates each
 * round; besides the medians, each round's ratio to by hand (`pairRatios`: median, min, max) compares moves made
 * under the same load. By hand sets the same migration parameters as the engine: capabilities `events`,
 * `auto-converge`, no `postcopy-ram`, no `pause-before-switchover` (no disk is copied), `downtime-limit` and
 * `max-bandwidth` (BENCH_BANDWIDTH_MIB, default 1024); neither uses multifd, compression or a dirty limit.
 * Writes bench/results/migration.json (BENCH_RESULT=NAME: NAME.json). Usage (root, in a private network namespace; BENCH_KINDS=idle for one kind):
 *   unshare --net -- bash -c 'ip link set lo up && node bench/migration.ts [rounds]'
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { copyingBaseFetcher } from '../src/instances/migrate/base-fetch.ts';
import { buildOffer } from '../src/instances/migrate/offer.ts';
import type { MigrationResult } from '../src/instances/migrate/protocol.ts';
import { MOVE_DOWNTIME_LIMIT_MS } from '../src/instances/model.ts';
import { migrateOut } from '../src/instances/migrate/source.ts';
import { MigrationTarget } from '../src/instances/migrate/target.ts';
import { runtimePaths } from '../src/instances/runtime.ts';
import { buildArgv } from '../src/qemu/argv.ts';
import { killQemu } from '../src/qemu/process.ts';
import type { QemuSpec } from '../src/qemu/spec.ts';
import { queryVersion, quit } from '../src/qmp/commands.ts';
import { type MigrationInfo, queryMigrate } from '../src/qmp/migration.ts';
import { QmpConnection } from '../src/qmp/connection.ts';
import { processStartTime } from '../src/lib/proc.ts';
import { SerialShell } from '../test/helpers/serial-shell.ts';
import { createTwoHosts, type Host, startSourceVm, tcgMoveSafeMiB } from '../test/helpers/two-hosts.ts';
import { writeResult } from './results.ts';

const rounds = Number(process.argv[2] ?? 3);
/**
 * 1 GiB and 8 KiB (BENCH_EXACT_GIB=1: exactly 1 GiB). Under TCG, QEMU 7.2 loses the guest's writes during a live
 * move when the RAM block's size is a multiple of 256 KiB, and the busy guest's kernel breaks on the target (see
 * `tcgMoveSafeMiB`, bench/tcg-move-survival.ts and bench/README.md): with 8 KiB more the guest survives its moves
 * and the busy moves are moves of a busy guest.
 */
const MEMORY_MIB = process.env['BENCH_EXACT_GIB'] === '1' ? 1024 : tcgMoveSafeMiB(1024);
// BENCH_BANDWIDTH_MIB=N: every contender's max-bandwidth (default 1 GiB/s): slower moves let the 1 s dirty-rate sample finish first.
const MAX_BANDWIDTH = Number(process.env['BENCH_BANDWIDTH_MIB'] ?? 1024) * 1024 * 1024;
const DOWNTIME_LIMIT_MS = Number(process.env['BENCH_DOWNTIME_LIMIT_MS'] ?? MOVE_DOWNTIME_LIMIT_MS.default);
const BASELINE = process.env['BENCH_BASELINE'];
/**
 * BENCH_FRESH=1: every move is the first move of a freshly booted guest (with BENCH_EXACT_GIB=1, the busy guest's
 * kernel breaks at its first live move under QEMU 7.2's TCG: without this only the first move would move a busy
 * guest).
 */
const FRESH = process.env['BENCH_FRESH'] === '1';
/** BENCH_AUTO_CONVERGE=0: neither side sets auto-converge (default: both do, as virtnode's `--postcopy never`). */
const AUTO_CONVERGE = process.env['BENCH_AUTO_CONVERGE'] !== '0';

/** A migration engine: this checkout's, or the baseline's (another checkout's modules, loaded as they are there). */
interface Engine {
  migrateOut: typeof migrateOut;
  MigrationTarget: typeof MigrationTarget;
  /** Its own downtime limit (default DOWNTIME_LIMIT_MS, as by hand). */
  downtimeLimitMs?: number;
  /** Its own calc-dirty-rate length, s (default: the engine's own). */
  dirtyRateSeconds?: number;
}
const engines: Record<string, Engine> = { virtnode: { migrateOut, MigrationTarget } };
// BENCH_ALSO_LIMIT_MS=N: this checkout's engine once more with downtime-limit N, in the same run.
const alsoLimit = process.env['BENCH_ALSO_LIMIT_MS'];
if (alsoLimit !== undefined) engines[`virtnode-limit-${alsoLimit}`] = { migrateOut, MigrationTarget, downtimeLimitMs: Number(alsoLimit) };
// BENCH_ALSO_DIRTY_RATE_S=N: this checkout's engine once more with calc-dirty-rate for N s (0: none), same run.
const alsoDirty = process.env['BENCH_ALSO_DIRTY_RATE_S'];
if (alsoDirty !== undefined) engines[`virtnode-dirty-rate-${alsoDirty}s`] = { migrateOut, MigrationTarget, dirtyRateSeconds: Number(alsoDirty) };
if (BASELINE !== undefined) {
  engines['baseline'] = {
    migrateOut: ((await import(join(BASELINE, 'src/instances/migrate/source.ts'))) as { migrateOut: typeof migrateOut }).migrateOut,
    MigrationTarget: ((await import(join(BASELINE, 'src/instances/migrate/target.ts'))) as { MigrationTarget: typeof MigrationTarget }).MigrationTarget,
  };
}
/**
 * 64 MiB rewritten without pause, alternately from two different random sources: the pages change content (what
 * calc-dirty-rate's sampling sees), none of them zero pages. In a session of its own, off the console: a
 * `( ... ) &` job of the console's interactive shell is stopped by job control and dirties nothing.
 */
const BUSY_LOOP =
  'dd if=/dev/urandom of=/run/s1 bs=1M count=32 2>/dev/null; dd if=/dev/urandom of=/run/s2 bs=1M count=32 2>/dev/null; ' +
  "setsid sh -c 'while :; do cat /run/s1 /run/s2 > /run/busy; cat /run/s2 /run/s1 > /run/busy; done' </dev/null >/dev/null 2>&1 &";
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** A QMP monitor spoken to with raw strings: the floor pays nothing for virtnode's client. */
class RawQmp {
  private buffer = '';
  private waiters: Array<(line: Record<string, unknown>) => boolean> = [];
  private readonly socket: Socket;
  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d) => {
      this.buffer += d.toString();
      const lines = this.buffer.split('\n');
      this.buffer = lines.pop()!;
      for (const line of lines) {
        if (line.trim() === '') continue;
        const message = JSON.parse(line) as Record<string, unknown>;
        this.waiters = this.waiters.filter((w) => !w(message));
      }
    });
  }

  static async connect(path: string): Promise<RawQmp> {
    for (let i = 0; ; i++) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const qmp = new RawQmp(socket);
        await qmp.next((m) => 'QMP' in m);
        await qmp.cmd('qmp_capabilities');
        return qmp;
      } catch (e) {
        if (i > 2000) throw e;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  }

  next(match: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      this.waiters.push((m) => {
        if (!match(m)) return false;
        resolve(m);
        return true;
      });
    });
  }

  async cmd(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    const reply = this.next((m) => 'return' in m || 'error' in m);
    this.socket.write(`${JSON.stringify(args === undefined ? { execute } : { execute, arguments: args })}\n`);
    const m = await reply;
    if ('error' in m) throw new Error(`${execute}: ${JSON.stringify(m['error'])}`);
    return m['return'];
  }

  close(): void {
    this.socket.destroy();
  }
}

interface Placement {
  host: Host;
  dir: string;
  spec: QemuSpec;
  pid: number;
}

interface Sample {
  downtimeMs: number;
  migrationMs: number;
  totalMs: number;
  /** Source STOP to the source's MIGRATION completed event (QEMU's clocks). */
  stopToSourceCompletedMs: number;
  /** The source's completed event to the destination's (the destination still loading). */
  sourceToDestCompletedMs: number;
  /** The destination's completed event to the guest running there (the control path: polling, cont). */
  destCompletedToRunningMs: number;
  /** QEMU's own figure (query-migrate `downtime` on the source). */
  qemuDowntimeMs: number | undefined;
  /** The host's 1-minute load average after the move. */
  loadAverage?: number;
  /** virtnode: when each of the engine's phases began, ms after its start. */
  phasesMs?: Record<string, number>;
  /** After the move (untimed): the guest's console answered, and (busy) its loop still ran. */
  guestAfter?: 'ok' | 'no answer' | 'loop gone';
}

type Timestamp = { seconds: number; microseconds: number };
const ms = (t: Timestamp) => t.seconds * 1000 + t.microseconds / 1000;
const isCompleted = (m: Record<string, unknown>) => m['event'] === 'MIGRATION' && (m['data'] as { status?: string })?.status === 'completed';

function breakdown(stop: number, sourceCompleted: number, destCompleted: number, running: number) {
  return { stopToSourceCompletedMs: sourceCompleted - stop, sourceToDestCompletedMs: destCompleted - sourceCompleted, destCompletedToRunningMs: running - destCompleted };
}

async function byHand(from: Placement, to: Host, dir: string): Promise<{ placement: Placement; sample: Sample }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const spec: QemuSpec = { ...from.spec, paths: runtimePaths(dir) };
  const uri = `tcp:${to.address}:${40000 + Math.floor(Math.random() * 9000)}`;
  const t0 = performance.now() + performance.timeOrigin;
  const child = spawn(to.launcher[0]!, [...to.launcher.slice(1), 'qemu-system-x86_64', ...buildArgv(spec), '-incoming', uri], { detached: true, stdio: 'ignore' });
  child.unref();
  const dest = await RawQmp.connect(spec.paths.qmp);
  await dest.cmd('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  const destCompleted = dest.next(isCompleted);
  const src = await RawQmp.connect(from.spec.paths.qmp);
  await src.cmd('migrate-set-capabilities', {
    capabilities: [
      { capability: 'events', state: true },
      { capability: 'auto-converge', state: AUTO_CONVERGE },
      { capability: 'pause-before-switchover', state: false },
      { capability: 'postcopy-ram', state: false },
    ],
  });
  await src.cmd('migrate-set-parameters', { 'downtime-limit': DOWNTIME_LIMIT_MS, 'max-bandwidth': MAX_BANDWIDTH });
  const stopped = src.next((m) => m['event'] === 'STOP');
  const ended = src.next((m) => m['event'] === 'MIGRATION' && ['completed', 'failed', 'cancelled'].includes(String((m['data'] as { status?: string })?.status)));
  const tMigrate = Date.now();
  await src.cmd('migrate', { uri });
  const end = await ended;
  if ((end['data'] as { status: string }).status !== 'completed') throw new Error(`by-hand migration ${JSON.stringify(end)}`);
  for (;;) {
    const status = (await dest.cmd('query-status')) as { status: string };
    if (status.status !== 'inmigrate') break;
    await new Promise((r) => setTimeout(r, 5));
  }
  await dest.cmd('cont');
  const tRunning = Date.now();
  const stop = ms((await stopped)['timestamp'] as Timestamp);
  const destLoaded = ms((await destCompleted)['timestamp'] as Timestamp);
  const qemuDowntimeMs = ((await src.cmd('query-migrate')) as { downtime?: number }).downtime;
  await src.cmd('quit').catch(() => {});
  src.close();
  dest.close();
  return {
    placement: { host: to, dir, spec, pid: child.pid! },
    sample: { downtimeMs: tRunning - stop, migrationMs: tRunning - tMigrate, totalMs: tRunning - t0, qemuDowntimeMs, ...breakdown(stop, ms(end['timestamp'] as Timestamp), destLoaded, tRunning) },
  };
}

async function byVirtnode(engine: Engine, from: Placement, to: Host, dir: string): Promise<{ placement: Placement; sample: Sample; result: MigrationResult }> {
  const qmp = await QmpConnection.connect(from.spec.paths.qmp);
  const events: Record<string, number> = {};
  const stopSource = qmp.onEvent((e) => {
    if (e.timestamp === undefined) return;
    if (e.event === 'STOP') events['stop'] ??= ms(e.timestamp);
    if (e.event === 'MIGRATION' && e.data?.['status'] === 'completed') events['sourceCompleted'] = ms(e.timestamp);
  });
  const target = new engine.MigrationTarget({ dir, listenHost: to.address, launcher: to.launcher, fetchBase: copyingBaseFetcher(join(to.stateDir, 'images')) });
  // The destination's own completed event, seen through the target's QMP once it is prepared.
  const prepare = target.prepare.bind(target);
  target.prepare = async (...args) => {
    const ready = await prepare(...args);
    target.connection?.onEvent((e) => {
      if (e.event === 'MIGRATION' && e.data?.['status'] === 'completed' && e.timestamp !== undefined) events['destCompleted'] = ms(e.timestamp);
    });
    return ready;
  };
  const offer = await buildOffer(from.spec, { qemuVersion: (await queryVersion(qmp)).qemu, transfers: {}, postcopy: false });
  const phasesMs: Record<string, number> = {};
  /** The engine's expected time left when the first pass had covered 25% and 50% of memory (ms from the start). */
  const at: Record<'25' | '50', { elapsedMs: number; expectedRemainingMs: number | undefined; converging: boolean | undefined } | undefined> = { '25': undefined, '50': undefined };
  const memoryBytes = MEMORY_MIB * 1024 * 1024;
  // QEMU's own figures while it migrates (test data for src/instances/migrate/predict.test.ts), polled beside the engine.
  const trace: Array<Pick<MigrationInfo, 'status' | 'ram' | 'total-time' | 'setup-time' | 'expected-downtime'>> = [];
  let tracing = true;
  const pick = (i: MigrationInfo) => Object.fromEntries((['total-time', 'setup-time', 'expected-downtime'] as const).filter((k) => i[k] !== undefined).map((k) => [k, i[k]]));
  const tracer = (async () => {
    while (tracing) {
      const i = await queryMigrate(qmp).catch(() => undefined);
      if (i?.ram !== undefined && (i.status === 'active' || i.status === 'device' || i.status === 'completed')) trace.push({ status: i.status, ram: i.ram, ...pick(i) });
      if (i?.status === 'completed') break;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const result = await engine.migrateOut(qmp, offer, target, {
    maxBandwidth: MAX_BANDWIDTH,
    downtimeLimitMs: engine.downtimeLimitMs ?? DOWNTIME_LIMIT_MS,
    autoConverge: AUTO_CONVERGE,
    // When each phase began, ms from the start (what the time before `migrate` goes to).
    onProgress: (p) => {
      phasesMs[p.phase] ??= p.elapsedMs;
      if (p.phase !== 'migrating' || p.bytesSent === 0) return;
      for (const k of ['25', '50'] as const) {
        if (at[k] === undefined && p.bytesRemaining <= (1 - Number(k) / 100) * memoryBytes) at[k] = { elapsedMs: p.elapsedMs, expectedRemainingMs: p.expectedRemainingMs, converging: p.converging };
      }
    },
    ...(engine.dirtyRateSeconds === undefined ? {} : { dirtyRateSeconds: engine.dirtyRateSeconds }),
  });
  tracing = false;
  await tracer;
  stopSource();
  await quit(qmp);
  qmp.close();
  target.connection?.close();
  return {
    placement: { host: to, dir, spec: { ...from.spec, paths: runtimePaths(dir) }, pid: result.targetPid },
    sample: {
      downtimeMs: result.downtimeMs ?? Number.NaN,
      migrationMs: result.migrationMs,
      totalMs: result.totalMs,
      qemuDowntimeMs: result.qemuDowntimeMs,
      phasesMs,
      ...breakdown(events['stop'] ?? Number.NaN, events['sourceCompleted'] ?? Number.NaN, events['destCompleted'] ?? Number.NaN, (events['stop'] ?? Number.NaN) + (result.downtimeMs ?? Number.NaN)),
    },
    result: { ...result, at, trace } as MigrationResult,
  };
}

/**
 * Absolute % errors of a move's estimates of the time left: `after25`/`after50` the engine's progress at 25%/50% of
 * the first pass (against the real time left then); `oldProgress*` the progress's former figure at the same point
 * (what is left at QEMU's current `mbps`, from the trace); `oldWhole`/`oldRefinedWhole` the former whole-move
 * predictions (calc-dirty-rate at the bandwidth cap; the scan rate after 1 s) against the migration's time.
 */
function predictionErrors(s: { totalMs: number; migrationMs: number; predictedMs?: number; refinedPredictedMs?: number | undefined; at?: Record<'25' | '50', { elapsedMs: number; expectedRemainingMs: number | undefined } | undefined>; trace?: Array<Pick<MigrationInfo, 'ram' | 'total-time'>> }) {
  const pct = (estimate: number | undefined, real: number) => (estimate === undefined || !Number.isFinite(estimate) || real <= 0 ? undefined : Math.round((Math.abs(estimate - real) / real) * 100));
  const live = (k: '25' | '50') => {
    const a = s.at?.[k];
    return a === undefined ? undefined : pct(a.expectedRemainingMs, s.totalMs - a.elapsedMs);
  };
  const old = (k: '25' | '50') => {
    const t = s.trace?.find((x) => x.ram !== undefined && x.ram.remaining <= (1 - Number(k) / 100) * x.ram.total);
    if (t?.ram === undefined || t['total-time'] === undefined || t.ram.mbps <= 0) return undefined;
    return pct((t.ram.remaining * 8) / (t.ram.mbps * 1000), s.migrationMs - t['total-time']);
  };
  return { after25: live('25'), after50: live('50'), oldProgress25: old('25'), oldProgress50: old('50'), oldWhole: pct(s.predictedMs, s.migrationMs), oldRefinedWhole: pct(s.refinedPredictedMs, s.migrationMs) };
}

const hosts = createTwoHosts();
const report: Record<string, unknown> = { fresh: FRESH, autoConverge: AUTO_CONVERGE, rounds, memoryMiB: MEMORY_MIB, maxBandwidth: MAX_BANDWIDTH, downtimeLimitMs: DOWNTIME_LIMIT_MS, ...(BASELINE === undefined ? {} : { baseline: BASELINE }) };
let current: Placement | undefined;
try {
  for (const kind of (process.env['BENCH_KINDS']?.split(',') ?? ['idle', 'busy']) as Array<'idle' | 'busy'>) {
    /** A guest booted on host a (busy: its loop started), placed there. */
    const bootGuest = async (name: string): Promise<Placement> => {
      const vm = await startSourceVm(hosts.a, { name, memoryMiB: MEMORY_MIB, memoryPadKiB: 0 });
      vm.qmp.close();
      const placement = { host: hosts.a, dir: vm.dir, spec: vm.spec, pid: vm.identity.pid };
      current = placement;
      const shell = await SerialShell.whenReady(vm.dir, 120_000);
      if (kind === 'busy') {
        await shell.run(BUSY_LOOP);
        const running = await shell.run('ps | grep -q "[c]at /run/s"');
        if (running.status !== 0) throw new Error(`the busy loop is not running: ${running.output}`);
      }
      shell.close();
      return placement;
    };
    type At = { elapsedMs: number; expectedRemainingMs: number | undefined; converging: boolean | undefined } | undefined;
    type EngineSample = Sample & { predictedMs: number; refinedPredictedMs: number | undefined; dirtyRateMiBps: number; bytesSent: number; at: Record<'25' | '50', At>; trace: Array<Pick<MigrationInfo, 'ram' | 'total-time'>> };
    const byEngine: Record<string, EngineSample[]> = Object.fromEntries(Object.keys(engines).map((k) => [k, []]));
    const hand: Sample[] = [];
    if (!FRESH) {
      await bootGuest(kind);
      // A first move of a fresh guest is slower whoever makes it (QEMU first walks memory never touched): not counted.
      const warmUp = await byHand(current!, hosts.b, join(hosts.b.stateDir, 'instances', `${kind}-warm-up`));
      rmSync(current!.dir, { recursive: true, force: true });
      current = warmUp.placement;
      console.log(`${kind} warm-up by hand: ${JSON.stringify(warmUp.sample)}, guest after it: ${await guestAfterMove(current.dir, kind)}`);
    }
    const contenders = [...Object.keys(engines), 'by hand'];
    const n = contenders.length;
    for (let i = 0; i < rounds * n; i++) {
      // Rotate who goes first in each round, so no one always moves the guest in the same direction.
      const who = contenders[(i + Math.floor(i / n)) % n]!;
      if (FRESH) {
        // Each move from a guest of its own, booted for it (the previous one is killed first).
        if (current !== undefined) await killPlacement(current);
        await bootGuest(`${kind}-src-${i}`);
      }
      const to = current!.host === hosts.a ? hosts.b : hosts.a;
      const dir = join(to.stateDir, 'instances', `${kind}-${i}`);
      const from = current!;
      let sample: Sample;
      if (who !== 'by hand') {
        const r = await byVirtnode(engines[who]!, from, to, dir);
        sample = { ...r.sample, predictedMs: r.result.predictedMs, refinedPredictedMs: r.result.refinedPredictedMs, dirtyRateMiBps: r.result.dirtyRateMiBps, bytesSent: r.result.bytesSent, ...(r.result as unknown as Pick<EngineSample, 'at' | 'trace'>) } as EngineSample;
        byEngine[who]!.push(sample as EngineSample);
        current = r.placement;
      } else {
        const r = await byHand(from, to, dir);
        sample = r.sample;
        hand.push(sample);
        current = r.placement;
      }
      rmSync(from.dir, { recursive: true, force: true });
      sample.loadAverage = loadavg()[0]!;
      sample.guestAfter = await guestAfterMove(current.dir, kind);
      console.log(`${kind} #${i} ${who}: ${JSON.stringify(sample)}`);
    }
    const medians = (xs: Sample[]) => ({
      downtimeMs: median(xs.map((s) => s.downtimeMs)),
      migrationMs: median(xs.map((s) => s.migrationMs)),
      totalMs: median(xs.map((s) => s.totalMs)),
      qemuDowntimeMs: median(xs.map((s) => s.qemuDowntimeMs ?? Number.NaN)),
      stopToSourceCompletedMs: median(xs.map((s) => s.stopToSourceCompletedMs)),
      sourceToDestCompletedMs: median(xs.map((s) => s.sourceToDestCompletedMs)),
      destCompletedToRunningMs: median(xs.map((s) => s.destCompletedToRunningMs)),
    });
    const h = medians(hand);
    const r2 = (x: number) => Math.round(x * 100) / 100;
    const guestAfter = (xs: Sample[]) => Object.fromEntries(['ok', 'no answer', 'loop gone'].map((k) => [k, xs.filter((x) => x.guestAfter === k).length]));
    const result: Record<string, unknown> = { byHand: { ...h, guestAfter: guestAfter(hand), samples: hand } };
    for (const [name, samples] of Object.entries(byEngine)) {
      const v = medians(samples);
      result[name] = {
        ...v,
        guestAfter: guestAfter(samples),
        samples,
        ratioToByHand: {
          downtime: r2(v.downtimeMs / h.downtimeMs),
          migration: r2(v.migrationMs / h.migrationMs),
          total: r2(v.totalMs / h.totalMs),
          // Before `migrate`: virtnode's dirty-rate measurement (1 s, QEMU 7.2's shortest) alongside the target's
          // preparation, against spawning the target by hand.
          beforeMigration: r2((v.totalMs - v.migrationMs) / (h.totalMs - h.migrationMs)),
        },
        // Each round has one move of every contender, back to back: the ratio within a round sees the same load.
        pairRatios: Object.fromEntries(
          (['totalMs', 'migrationMs', 'downtimeMs'] as const).map((k) => {
            const xs = samples.map((s, r) => r2(s[k] / hand[r]![k]));
            return [k.replace(/Ms$/, ''), { median: r2(median(xs)), min: Math.min(...xs), max: Math.max(...xs), all: xs }];
          }),
        ),
        prediction: samples.map((s) => ({ predictedMs: s.predictedMs, refinedPredictedMs: s.refinedPredictedMs, measuredMigrationMs: s.migrationMs, dirtyRateMiBps: s.dirtyRateMiBps, ...predictionErrors(s) })),
        // Median absolute % error of each estimate of the time left against the real time left.
        predictionError: Object.fromEntries(
          (['after25', 'after50', 'oldProgress25', 'oldProgress50', 'oldWhole', 'oldRefinedWhole'] as const).map((k) => {
            const xs = samples.map((s) => predictionErrors(s)[k]).filter((x): x is number => x !== undefined);
            return [k, { medianAbsPct: Math.round(median(xs)), n: xs.length, of: samples.length }];
          }),
        ),
      };
    }
    report[kind] = result;
    console.log(`${kind} medians: ${JSON.stringify(Object.fromEntries(Object.entries(result).map(([k, v]) => [k, { ...(v as Record<string, unknown>), samples: undefined, prediction: undefined }])))}`);
    if (current !== undefined) await killPlacement(current);
    current = undefined;
  }
  writeResult(process.env['BENCH_RESULT'] ?? 'migration', report);
  console.log(JSON.stringify(report, null, 2));
} finally {
  if (current !== undefined) await killPlacement(current);
  hosts.remove();
}

/**
 * Whether the guest still works where it now runs: its console answers a command, and the busy loop is still
 * there. A guest that stopped after a move would make the next moves look like moves of an idle guest.
 */
async function guestAfterMove(dir: string, kind: 'idle' | 'busy'): Promise<'ok' | 'no answer' | 'loop gone'> {
  const shell = await SerialShell.open(dir);
  try {
    const r = await shell.run(kind === 'busy' ? 'ps | grep -q "[c]at /run/s"' : 'true', 20_000);
    return r.status === 0 ? 'ok' : 'loop gone';
  } catch {
    return 'no answer';
  } finally {
    shell.close();
  }
}

async function killPlacement(p: Placement): Promise<void> {
  const start = processStartTime(p.pid);
  if (start !== undefined) await killQemu({ pid: p.pid, start }).catch(() => {});
}
