/**
 * The source side of a live move, driven over the running VM's QMP: measure the dirty rate and predict the time
 * (alongside the rest), let the target prepare, mirror local disks into the target's NBD exports until they are
 * in sync, migrate the memory (post-copy when pre-copy stalls, if allowed), finish the mirrors at the switch-over
 * pause, and have the target resume the guest the moment the switch-over begins (it waits there for the last of
 * the memory). Until then, any failure or a cancel puts everything back: the migration and mirrors are
 * cancelled, the guest runs on here as before, and the target is told to abort. After it, a failure runs the
 * guest here again only once the target's abort succeeded (it is refused once the guest runs there).
 */
import { VirtnodeError, isVirtnodeError } from '../../lib/errors.ts';
import { withSignal } from '../../lib/signal.ts';
import { QMP_COMMANDS, QMP_EVENTS, cont, queryBlockJobs, queryMemorySizeSummary, queryStatus, queryVersion } from '../../qmp/commands.ts';
import type { QmpConnection, QmpEvent } from '../../qmp/connection.ts';
import {
  blockdevMirror,
  blockJobCancel,
  calcDirtyRate,
  type MigrationInfo,
  migrate,
  migrateCancel,
  migrateContinue,
  migratePause,
  migrateResume,
  migrateSetCapabilities,
  migrateSetParameters,
  migrateStartPostcopy,
  queryDirtyRate,
  queryMigrate,
} from '../../qmp/migration.ts';
import { MOVE_DOWNTIME_LIMIT_MS } from '../model.ts';
import { type ConvergenceSample, estimateRemaining, type MigrationPoll, predictMigrationMs, preCopyStalled } from './predict.ts';
import type { MigrationOffer, MigrationProgress, MigrationResult, PostcopyMode, SwitchoverTimes, TargetHost, TargetReady, TargetResumed } from './protocol.ts';

export const DEFAULT_MAX_BANDWIDTH = 1024 * 1024 * 1024;
const POLL_MS = 50;
/** The polls the expected time is estimated from (the peak throughput is taken over these): about two minutes. */
const MAX_POLLS_KEPT = 2_400;
/** When the prediction is made again from the migration's own progress. */
const REFINE_AFTER_MS = 1_000;
const MIRROR_READY_TIMEOUT_MS = 30 * 60_000;
/**
 * Post-copy that sends nothing for this long while memory is left is taken for a dropped link: the source pauses
 * it (`migrate-pause`) rather than let TCP retry for many minutes, and recovery begins (the target pauses too and
 * listens again, the source resumes to it).
 */
export const POSTCOPY_STALL_MS = 5_000;
const MiB = 1024 * 1024;
/** The NBD client nodes and mirror jobs a move adds on the source are named `migrate-DISK`. */
const MIGRATE_NODE_PREFIX = 'migrate-';

export interface MigrateOutOptions {
  downtimeLimitMs?: number;
  /** Bytes per second for memory (QEMU's cap); also the bandwidth the prediction assumes. */
  maxBandwidth?: number;
  autoConverge?: boolean;
  postcopy?: PostcopyMode;
  /** How long calc-dirty-rate samples, seconds; 0 skips the measurement (the prediction then assumes an idle guest). */
  dirtyRateSeconds?: number;
  onProgress?: (progress: MigrationProgress) => void;
  signal?: AbortSignal;
}

/** Everything a move changed on the source that a rollback must undo. */
interface SourceState {
  migrationStarted: boolean;
  mirrorJobs: string[];
  nbdNodes: string[];
  wasRunning: boolean;
}

/**
 * Moves the VM behind `qmp` to `target`. Resolves once the guest runs on the target; the source QEMU is then
 * stopped (`postmigrate`) and the caller quits it. Rejects with the guest still running here, unless post-copy had
 * already started (the error then says the guest's state is split and cannot be rolled back).
 */
export async function migrateOut(qmp: QmpConnection, offer: MigrationOffer, target: TargetHost, options: MigrateOutOptions = {}): Promise<MigrationResult> {
  const startedAt = Date.now();
  const signal = options.signal;
  const q = withSignal({}, signal);
  const downtimeLimitMs = options.downtimeLimitMs ?? MOVE_DOWNTIME_LIMIT_MS.default;
  const maxBandwidth = options.maxBandwidth ?? DEFAULT_MAX_BANDWIDTH;
  const postcopyMode = options.postcopy ?? 'never';
  if ((postcopyMode === 'auto') !== offer.postcopy) throw new VirtnodeError('INVALID', `postcopy: the offer says ${offer.postcopy}, the options say "${postcopyMode}"`, { field: 'postcopy' });
  const report = (progress: Omit<MigrationProgress, 'elapsedMs'>) => options.onProgress?.({ ...progress, elapsedMs: Date.now() - startedAt });
  const idle = { bytesSent: 0, bytesRemaining: 0, dirtyPagesPerSecond: 0, expectedRemainingMs: undefined, converging: undefined, diskBytesDone: 0, diskBytesTotal: 0 };

  const status = await queryStatus(qmp, q);
  if (status.status !== 'running' && status.status !== 'paused') {
    throw new VirtnodeError('INVALID_STATE', `the instance's QEMU is "${status.status}": only a running or paused VM can be moved live`);
  }
  const version = (await queryVersion(qmp, q)).qemu;
  if (version.major !== offer.qemuVersion.major || version.minor !== offer.qemuVersion.minor) {
    throw new VirtnodeError('INVALID', 'qemuVersion: the offer does not name the QEMU the instance runs on', { field: 'qemuVersion' });
  }

  const memoryBytes = (await queryMemorySizeSummary(qmp, q))['base-memory'];
  report({ phase: 'measuring', ...idle });
  const dirtyRateSeconds = Math.round(options.dirtyRateSeconds ?? 1);
  // The measurement runs alongside the target's preparation and then the migration itself, never before it: it
  // samples page contents (page-sampling), which the migration's reads do not change, and QEMU 7.2 samples for
  // at least 1 s, longer than a small guest's whole move. The prediction is made once it is in; a move over
  // sooner reports none (the refined prediction and the progress's expected time come from QEMU's own figures).
  let measured: { dirtyRateMiBps: number; predictedMs: number } | undefined;
  const measuring = dirtyRateSeconds > 0 ? measureDirtyRate(qmp, dirtyRateSeconds, signal) : Promise.resolve(0);
  measuring.then(
    (dirtyRateMiBps) => {
      const predictedMs = predictMigrationMs({ memoryBytes, dirtyBytesPerSecond: dirtyRateMiBps * MiB, bandwidthBytesPerSecond: maxBandwidth, downtimeLimitMs }) ?? Number.POSITIVE_INFINITY;
      measured = { dirtyRateMiBps, predictedMs };
    },
    () => {}, // a failed measurement only costs the prediction
  );

  const state: SourceState = { migrationStarted: false, mirrorJobs: [], nbdNodes: [], wasRunning: status.running };
  let resumed: TargetResumed | undefined;
  /**
   * The target's resume, asked the moment the switch-over begins (MIGRATION `device`, or `postcopy-active`): the
   * request travels and the target waits for the last of the memory while QEMU still sends it, so no round trip
   * to the target is left in the guest's downtime. From then on the move goes to its end: a cancel no longer
   * applies, and a rollback first makes sure the target is gone before the guest may run here again.
   */
  let resuming: Promise<TargetResumed> | undefined;
  const armResume = (): Promise<TargetResumed> => {
    if (resuming === undefined) {
      resuming = target.resume({});
      resuming.catch(() => {}); // awaited below, on every path that goes on
    }
    return resuming;
  };
  let postcopy = false;
  let stopAt: number | undefined;
  let completedAt: number | undefined;
  let pausedAt: number | undefined;
  let continuedAt: number | undefined;
  const stopListener = qmp.onEvent((e) => {
    if (e.event === QMP_EVENTS.stop && state.migrationStarted && stopAt === undefined) stopAt = eventTime(e);
    if (e.event !== QMP_EVENTS.migration || !state.migrationStarted) return;
    const status = e.data?.['status'];
    if (status === 'completed') completedAt = eventTime(e);
    if (status === 'pre-switchover') pausedAt = eventTime(e);
    // A short post-copy may be over before the loop below looks: QEMU's event says it happened.
    if (status === 'postcopy-active') postcopy = true;
    if (status === 'device' || status === 'postcopy-active') void armResume();
  });
  try {
    report({ phase: 'preparing', ...idle });
    let ready: TargetReady;
    try {
      ready = await target.prepare(offer, q);
    } catch (e) {
      throw new VirtnodeError(isVirtnodeError(e) ? e.code : 'INTERNAL', `the target could not prepare: ${(e as Error).message}`, { cause: e });
    }
    const copied = offer.disks.filter((d) => d.transfer.kind === 'copy');
    await migrateSetCapabilities(
      qmp,
      // x-ignore-shared off: a warm start loaded its state with it (and a QEMU keeps its capabilities), and a
      // stream saved with it is one the target, which has no such RAM file, refuses.
      { events: true, 'auto-converge': options.autoConverge ?? true, 'postcopy-ram': offer.postcopy, 'pause-before-switchover': copied.length > 0, 'x-ignore-shared': false },
      q,
    );
    // The cap holds in post-copy too (QEMU's own default there is no cap at all).
    await migrateSetParameters(qmp, { 'downtime-limit': downtimeLimitMs, 'max-bandwidth': maxBandwidth, ...(offer.postcopy ? { 'max-postcopy-bandwidth': maxBandwidth } : {}) }, q);

    let diskBytesTotal = 0;
    if (copied.length > 0) {
      if (ready.nbd === undefined) throw new VirtnodeError('INTERNAL', 'the target exports no NBD disks for the disks to copy');
      diskBytesTotal = await mirrorDisks(qmp, offer, ready.nbd, state, (done, total) => report({ phase: 'mirroring', ...idle, diskBytesDone: done, diskBytesTotal: total }), signal);
    }

    const migrationStartedAt = Date.now();
    state.migrationStarted = true;
    await migrate(qmp, ready.migrationUri, q);
    const samples: ConvergenceSample[] = [];
    let refinedPredictedMs: number | undefined;
    let switchedOver = false;
    let info: MigrationInfo;
    // Once post-copy is asked for, a cancel or timeout no longer applies: the guest is about to run on the target
    // with part of its memory still here, so the move goes on to its end (or to recovery).
    let postcopyAsked = false;
    /** Post-copy's last progress: bytes sent, and when they last changed. */
    let progress = { bytes: -1, at: Date.now() };
    const polls: MigrationPoll[] = [];
    /** The expected time left, from QEMU's own figures at this poll (pre-copy only: post-copy's end is the rest at the link's rate). */
    const expectation = (phase: MigrationProgress['phase'], ram: MigrationInfo['ram']): Pick<MigrationProgress, 'expectedRemainingMs' | 'converging'> => {
      if (ram === undefined) return { expectedRemainingMs: undefined, converging: undefined };
      if (phase !== 'migrating') return { expectedRemainingMs: ram.mbps > 0 ? Math.round((ram.remaining * 8) / (ram.mbps * 1000)) : undefined, converging: undefined };
      const sampled = measured === undefined ? undefined : measured.dirtyRateMiBps * MiB;
      polls.push({ elapsedMs: Date.now() - migrationStartedAt, ram });
      if (polls.length > MAX_POLLS_KEPT) polls.shift();
      const e = estimateRemaining({ polls, downtimeLimitMs, sampledDirtyBytesPerSecond: sampled });
      if (e === undefined) return { expectedRemainingMs: undefined, converging: undefined };
      return e.converging ? { expectedRemainingMs: e.remainingMs, converging: true } : { expectedRemainingMs: undefined, converging: false };
    };
    for (;;) {
      if (signal?.aborted && !postcopyAsked && resuming === undefined) throw new VirtnodeError('TIMEOUT', 'the move was cancelled', { cause: signal.reason });
      const lq = postcopyAsked || resuming !== undefined ? {} : q;
      info = await queryMigrate(qmp, lq);
      const ram = info.ram;
      // After the switch to post-copy, every look (its end included) is post-copy's.
      const phase = info.status === 'postcopy-paused' || info.status === 'postcopy-recover' ? 'recovering' : info.status === 'postcopy-active' || postcopy ? 'postcopy' : info.status === 'pre-switchover' || info.status === 'device' ? 'switching' : 'migrating';
      report({
        phase,
        bytesSent: ram?.transferred ?? 0,
        bytesRemaining: ram?.remaining ?? 0,
        dirtyPagesPerSecond: ram?.['dirty-pages-rate'] ?? 0,
        ...expectation(phase, ram),
        diskBytesDone: diskBytesTotal,
        diskBytesTotal,
      });
      if (info.status === 'completed') break;
      if (info.status === 'failed' || info.status === 'cancelled') {
        throw new VirtnodeError('COMMAND_FAILED', `the migration ${info.status}${info['error-desc'] === undefined ? '' : `: ${info['error-desc']}`}`);
      }
      if (info.status === 'pre-switchover' && !switchedOver) {
        // Once only: a query right after migrate-continue may still see the pause.
        switchedOver = true;
        await finishMirrors(qmp, state, signal);
        await migrateContinue(qmp, lq);
        continuedAt = Date.now();
      } else if (info.status === 'postcopy-active' && resumed === undefined) {
        postcopy = true;
        resumed = await armResume();
      } else if (info.status === 'postcopy-paused' && target.recover !== undefined) {
        await migrateResume(qmp, await target.recover(lq), lq);
        progress = { bytes: -1, at: Date.now() };
      }
      // Only once the target's resume step was answered: a pause before it leaves the target's `cont` hanging and
      // the move failing with the memory split (seen when the watch ran apart from this loop). A link that drops
      // while that step is on the wire is left to TCP, which carries the migration on once it is back.
      if (info.status === 'postcopy-active' && resumed !== undefined && ram !== undefined && ram.remaining > 0) {
        if (ram.transferred !== progress.bytes) progress = { bytes: ram.transferred, at: Date.now() };
        else if (Date.now() - progress.at > POSTCOPY_STALL_MS) {
          await migratePause(qmp, lq).catch(() => undefined);
          progress = { bytes: -1, at: Date.now() };
        }
      }
      const elapsedMs = Date.now() - migrationStartedAt;
      if (refinedPredictedMs === undefined && info.status === 'active' && ram !== undefined && elapsedMs >= REFINE_AFTER_MS && ram.total > ram.remaining) {
        // The rate QEMU really gets through memory (zero pages included: under load the scan, not the link, limits).
        refinedPredictedMs = predictMigrationMs({
          memoryBytes: ram.total,
          dirtyBytesPerSecond: (measured?.dirtyRateMiBps ?? 0) * MiB,
          bandwidthBytesPerSecond: ((ram.total - ram.remaining) * 1000) / elapsedMs,
          downtimeLimitMs,
        });
      }
      if (info.status === 'active' && offer.postcopy && ram !== undefined) {
        samples.push({ syncCount: ram['dirty-sync-count'], remainingBytes: ram.remaining });
        if (preCopyStalled(samples)) {
          postcopyAsked = true;
          await migrateStartPostcopy(qmp, {});
          samples.length = 0;
        }
      }
      await nextMigrationEvent(qmp, POLL_MS);
    }
    // Asked at the `device` event already (QEMU sends it before `completed`); asked here only if it was missed.
    if (resumed === undefined) resumed = await armResume();
    for (const node of state.nbdNodes) await qmp.execute(QMP_COMMANDS.blockdevDel, { 'node-name': node }).catch(() => {});
    report({ phase: 'completed', bytesSent: info.ram?.transferred ?? 0, bytesRemaining: 0, dirtyPagesPerSecond: 0, expectedRemainingMs: 0, converging: true, diskBytesDone: diskBytesTotal, diskBytesTotal });
    return {
      ...measured,
      ...(refinedPredictedMs === undefined ? {} : { refinedPredictedMs }),
      // The target's own resume time; when it no longer knows it (its answer was lost and its daemon restarted),
      // the times end now, and the downtime is unknown rather than a guess.
      migrationMs: (resumed.resumedAt ?? Date.now()) - migrationStartedAt,
      totalMs: (resumed.resumedAt ?? Date.now()) - startedAt,
      qemuDowntimeMs: info.downtime,
      downtimeMs: stopAt === undefined || resumed.resumedAt === undefined ? undefined : Math.max(0, resumed.resumedAt - stopAt),
      ...(stopAt === undefined || resumed.resumedAt === undefined ? {} : { switchover: switchoverTimes(stopAt, { pausedAt, continuedAt, completedAt }, { ...resumed, resumedAt: resumed.resumedAt }) }),
      bytesSent: info.ram?.transferred ?? 0,
      postcopy,
      diskBytes: diskBytesTotal,
      targetPid: resumed.pid,
    };
  } catch (e) {
    if (postcopy) {
      throw new VirtnodeError('INTERNAL', `the move failed after the switch to post-copy; the guest's memory is split between the hosts and cannot be rolled back: ${(e as Error).message}`, { cause: e });
    }
    const failures = await rollBack(qmp, state, target, resuming !== undefined);
    if (failures.length > 0) {
      throw new VirtnodeError(isVirtnodeError(e) ? e.code : 'INTERNAL', `${(e as Error).message} (and the rollback failed: ${failures.join('; ')})`, { cause: e });
    }
    throw e;
  } finally {
    stopListener();
  }
}

function switchoverTimes(stopAt: number, source: { pausedAt?: number | undefined; continuedAt?: number | undefined; completedAt?: number | undefined }, resumed: TargetResumed & { resumedAt: number }): SwitchoverTimes {
  const since = (t: number) => Math.round(t - stopAt);
  const { pausedAt, continuedAt, completedAt } = source;
  return {
    runningMs: since(resumed.resumedAt),
    ...(pausedAt === undefined ? {} : { pausedMs: since(pausedAt) }),
    ...(continuedAt === undefined ? {} : { continuedMs: since(continuedAt) }),
    ...(completedAt === undefined ? {} : { sourceCompletedMs: since(completedAt) }),
    ...(resumed.askedAt === undefined ? {} : { resumeAskedMs: since(resumed.askedAt) }),
    ...(resumed.arrivedAt === undefined ? {} : { arrivedMs: since(resumed.arrivedAt) }),
  };
}

/** Resolves at the next MIGRATION event (capability `events`) or after `ms`, whichever comes first. */
function nextMigrationEvent(qmp: QmpConnection, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    };
    const timer = setTimeout(finish, ms);
    const unsubscribe = qmp.onEvent((e) => {
      if (e.event === QMP_EVENTS.migration) finish();
    });
  });
}

/** A QMP event's own timestamp (QEMU's wall clock), ms. */
function eventTime(e: QmpEvent): number {
  return e.timestamp === undefined ? Date.now() : e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;
}

async function measureDirtyRate(qmp: QmpConnection, seconds: number, signal: AbortSignal | undefined): Promise<number> {
  await calcDirtyRate(qmp, seconds, withSignal({}, signal));
  const deadline = Date.now() + seconds * 1000 + 10_000;
  // Nothing to ask before the sampling period is over; then often, so the result is not late by a poll interval.
  await new Promise((r) => setTimeout(r, seconds * 1000));
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    const info = await queryDirtyRate(qmp, withSignal({}, signal));
    if (info.status === 'measured') return info['dirty-rate'] ?? 0;
    if (Date.now() > deadline) throw new VirtnodeError('TIMEOUT', `calc-dirty-rate did not finish within ${seconds} s + 10 s`);
  }
}

/** Starts one mirror job per copied disk into the target's NBD export and waits until all are in sync. */
async function mirrorDisks(
  qmp: QmpConnection,
  offer: MigrationOffer,
  nbd: NonNullable<TargetReady['nbd']>,
  state: SourceState,
  onProgress: (done: number, total: number) => void,
  signal: AbortSignal | undefined,
): Promise<number> {
  const ready = new Set<string>();
  let failed: string | undefined;
  const unsubscribe = qmp.onEvent((e) => {
    const device = typeof e.data?.['device'] === 'string' ? e.data['device'] : undefined;
    if (device === undefined || !state.mirrorJobs.includes(device)) return;
    if (e.event === QMP_EVENTS.blockJobReady) ready.add(device);
    if (e.event === QMP_EVENTS.blockJobCompleted || e.event === QMP_EVENTS.blockJobCancelled) failed ??= `the disk mirror ${device} ended early${typeof e.data?.['error'] === 'string' ? `: ${e.data['error']}` : ''}`;
  });
  try {
    for (const disk of offer.disks) {
      if (disk.transfer.kind !== 'copy') continue;
      const exportName = nbd.exports[disk.id];
      if (exportName === undefined) throw new VirtnodeError('INTERNAL', `the target exports no NBD disk for ${disk.id}`);
      const node = `${MIGRATE_NODE_PREFIX}${disk.id}`;
      await qmp.execute(QMP_COMMANDS.blockdevAdd, { driver: 'nbd', 'node-name': node, server: { type: 'inet', host: nbd.host, port: String(nbd.port) }, export: exportName }, withSignal({}, signal));
      state.nbdNodes.push(node);
      state.mirrorJobs.push(node);
      await blockdevMirror(qmp, { 'job-id': node, device: disk.id, target: node, sync: disk.transfer.base === undefined ? 'full' : 'top' }, withSignal({}, signal));
    }
    const deadline = Date.now() + MIRROR_READY_TIMEOUT_MS;
    for (;;) {
      if (failed !== undefined) throw new VirtnodeError('COMMAND_FAILED', failed);
      if (signal?.aborted) throw new VirtnodeError('TIMEOUT', 'the move was cancelled', { cause: signal.reason });
      const jobs = (await queryBlockJobs(qmp, withSignal({}, signal))) as Array<{ device: string; offset?: number; len?: number; ready: boolean }>;
      const ours = jobs.filter((j) => state.mirrorJobs.includes(j.device));
      onProgress(
        ours.reduce((s, j) => s + (j.offset ?? 0), 0),
        ours.reduce((s, j) => s + (j.len ?? 0), 0),
      );
      if (ready.size === state.mirrorJobs.length) return ours.reduce((s, j) => s + (j.len ?? 0), 0);
      if (Date.now() > deadline) throw new VirtnodeError('TIMEOUT', `the disk mirrors were not in sync within ${MIRROR_READY_TIMEOUT_MS / 60_000} minutes`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    unsubscribe();
  }
}

/**
 * At the switch-over pause (vCPUs stopped): a ready mirror that is cancelled finishes cleanly without pivoting,
 * so the source keeps its own disk (a fallback if the switch-over still fails) and the target's copy is complete.
 */
async function finishMirrors(qmp: QmpConnection, state: SourceState, signal: AbortSignal | undefined): Promise<void> {
  if (state.mirrorJobs.length === 0) return;
  const pending = new Set(state.mirrorJobs);
  const done = new Promise<void>((resolve, reject) => {
    const unsubscribe = qmp.onEvent((e) => {
      const device = e.data?.['device'];
      if (e.event !== QMP_EVENTS.blockJobCompleted || typeof device !== 'string' || !pending.has(device)) return;
      if (typeof e.data?.['error'] === 'string') {
        unsubscribe();
        reject(new VirtnodeError('COMMAND_FAILED', `the disk mirror ${device} failed at switch-over: ${e.data['error']}`));
        return;
      }
      pending.delete(device);
      if (pending.size === 0) {
        unsubscribe();
        resolve();
      }
    });
  });
  for (const job of state.mirrorJobs) await blockJobCancel(qmp, { device: job }, withSignal({}, signal));
  await done;
  state.mirrorJobs = [];
}

/**
 * Undoes what the move did on the source, then aborts the target. Returns what could not be undone. `armed`: the
 * target was already asked to resume the guest; it is aborted first (its abort is refused once the guest runs
 * there), and unless that succeeded the guest is not resumed here: never two running copies.
 */
async function rollBack(qmp: QmpConnection, state: SourceState, target: TargetHost, armed: boolean): Promise<string[]> {
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      return true;
    } catch (e) {
      failures.push(`${what}: ${(e as Error).message}`);
      return false;
    }
  };
  if (armed && !(await attempt('abort the target, which may already run the guest (so it is not resumed on the source)', () => target.abort('the move failed at the switch-over')))) {
    return failures;
  }
  if (qmp.error === undefined) {
    if (state.migrationStarted) {
      await attempt('cancel the migration', async () => {
        const info = await queryMigrate(qmp);
        if (info.status !== 'completed' && info.status !== 'failed' && info.status !== 'cancelled') await migrateCancel(qmp);
        await waitForMigrationEnd(qmp);
      });
    }
    for (const job of state.mirrorJobs) await attempt(`cancel the disk mirror ${job}`, () => blockJobCancel(qmp, { device: job, force: true }).catch(ignoreMissingJob));
    await attempt('wait for the disk mirrors to end', () => waitForJobsGone(qmp, state.mirrorJobs));
    for (const node of state.nbdNodes) await attempt(`remove ${node}`, () => qmp.execute(QMP_COMMANDS.blockdevDel, { 'node-name': node }));
    await attempt('reset the switch-over pause', () => migrateSetCapabilities(qmp, { 'pause-before-switchover': false, 'postcopy-ram': false }));
    if (state.wasRunning) {
      await attempt('resume the guest on the source', async () => {
        if (!(await queryStatus(qmp)).running) await cont(qmp);
      });
    }
  } else {
    failures.push(`the source's QMP connection is gone (${qmp.error.message})`);
  }
  if (!armed) await attempt('abort the target', () => target.abort('the move failed or was cancelled'));
  return failures;
}

function ignoreMissingJob(e: unknown): void {
  if (!isVirtnodeError(e, 'QMP_COMMAND')) throw e;
}

async function waitForMigrationEnd(qmp: QmpConnection): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const info = await queryMigrate(qmp);
    if (info.status === undefined || info.status === 'cancelled' || info.status === 'failed' || info.status === 'completed' || info.status === 'none') return;
    if (Date.now() > deadline) throw new VirtnodeError('TIMEOUT', `the migration is still "${info.status}" 30 s after migrate_cancel`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitForJobsGone(qmp: QmpConnection, jobs: readonly string[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await queryBlockJobs(qmp)).some((j) => jobs.includes(j.device))) {
    if (Date.now() > deadline) throw new VirtnodeError('TIMEOUT', 'the disk mirrors did not end within 30 s of their cancel');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Puts a source back after the process that drove a move died mid-way (for the host's reconcile): cancels the
 * migration and any disk mirror, removes the NBD client nodes, and resumes the guest if the move had stopped it.
 * Only call it once the target is known not to have resumed the guest (a target aborts a move whose source went
 * away before `resume`; the caller asks it, or the cluster's record of the move): otherwise two copies would run.
 */
export async function recoverSource(qmp: QmpConnection): Promise<{ cancelled: boolean; resumed: boolean }> {
  const before = await queryMigrate(qmp);
  const stoppedByMove = before.status === 'pre-switchover' || before.status === 'device' || before.status === 'completed';
  const active = before.status !== undefined && !['none', 'completed', 'failed', 'cancelled'].includes(before.status);
  if (active) await migrateCancel(qmp);
  await waitForMigrationEnd(qmp);
  const jobs = (await queryBlockJobs(qmp)).map((j) => j.device).filter((d) => d.startsWith(MIGRATE_NODE_PREFIX));
  for (const job of jobs) await blockJobCancel(qmp, { device: job, force: true }).catch(ignoreMissingJob);
  await waitForJobsGone(qmp, jobs);
  const nodes = (await qmp.execute<Array<{ 'node-name': string }>>(QMP_COMMANDS.queryNamedBlockNodes, { flat: true }))
    .map((n) => n['node-name'])
    .filter((n) => n.startsWith(MIGRATE_NODE_PREFIX));
  for (const node of nodes) await qmp.execute(QMP_COMMANDS.blockdevDel, { 'node-name': node });
  await migrateSetCapabilities(qmp, { 'pause-before-switchover': false, 'postcopy-ram': false });
  const { status } = await queryStatus(qmp);
  const resume = status === 'postmigrate' || status === 'finish-migrate' || (status === 'paused' && stoppedByMove);
  if (resume) await cont(qmp);
  return { cancelled: active, resumed: resume };
}
