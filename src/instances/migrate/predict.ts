/** Pure estimates that steer a live move: how long pre-copy takes, and when it has stopped converging. */

/** Pre-copy rounds after which a migration that still cannot finish is called non-converging. */
const MAX_ROUNDS = 30;

export interface PredictInput {
  /** Guest memory to send, bytes. */
  memoryBytes: number;
  /** How fast the guest dirties memory, bytes per second (calc-dirty-rate). */
  dirtyBytesPerSecond: number;
  /** What the link (or the bandwidth cap) carries, bytes per second. */
  bandwidthBytesPerSecond: number;
  /** The downtime QEMU may take for the last round, ms. */
  downtimeLimitMs: number;
}

/**
 * The expected pre-copy time, ms: a first round sends all memory, each later round resends what the guest
 * dirtied during the previous one, until a round fits in the downtime limit. `undefined`: it never converges
 * (the guest dirties memory as fast as the link carries it), so only post-copy or auto-converge can finish.
 */
export function predictMigrationMs(input: PredictInput): number | undefined {
  const { memoryBytes, dirtyBytesPerSecond, bandwidthBytesPerSecond, downtimeLimitMs } = input;
  if (bandwidthBytesPerSecond <= 0) return undefined;
  let roundMs = (memoryBytes / bandwidthBytesPerSecond) * 1000;
  let totalMs = roundMs;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const dirtied = Math.min(memoryBytes, (dirtyBytesPerSecond * roundMs) / 1000);
    roundMs = (dirtied / bandwidthBytesPerSecond) * 1000;
    if (roundMs <= downtimeLimitMs) return Math.round(totalMs + roundMs);
    totalMs += roundMs;
  }
  return undefined;
}

/** One look at a running migration: its dirty-sync round and the memory still to send at that moment. */
export interface ConvergenceSample {
  syncCount: number;
  remainingBytes: number;
}

/** Rounds of pre-copy before post-copy is considered at all. */
export const POSTCOPY_MIN_ROUNDS = 5;

/**
 * True when pre-copy has stopped making progress: after POSTCOPY_MIN_ROUNDS rounds, the memory left at the end
 * of the last round is still at least 90% of what was left two rounds earlier.
 */
export function preCopyStalled(samples: readonly ConvergenceSample[]): boolean {
  const lastPerRound = new Map<number, number>();
  for (const s of samples) lastPerRound.set(s.syncCount, s.remainingBytes);
  const rounds = [...lastPerRound.keys()].sort((a, b) => a - b);
  const latest = rounds.at(-1);
  if (latest === undefined || latest < POSTCOPY_MIN_ROUNDS) return false;
  const earlier = lastPerRound.get(latest - 2);
  if (earlier === undefined) return false;
  return lastPerRound.get(latest)! >= 0.9 * earlier;
}

/** What QEMU says of a running migration (query-migrate's `ram`), as far as the estimate below reads it. */
export interface RamProgress {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  mbps: number;
  'dirty-pages-rate': number;
  'dirty-sync-count': number;
  'page-size': number;
}

/** One poll of a running migration: QEMU's figures and when (ms since `migrate` was asked). */
export interface MigrationPoll {
  elapsedMs: number;
  ram: RamProgress;
}

export interface RemainingInput {
  /** The polls so far, oldest first, the last one now. */
  polls: readonly MigrationPoll[];
  downtimeLimitMs: number;
  /** The calc-dirty-rate sample, bytes/s, used until QEMU has measured its own rate (at its second dirty sync). */
  sampledDirtyBytesPerSecond?: number | undefined;
}

export type RemainingEstimate =
  | { converging: true; remainingMs: number; dirtyBytesPerSecond: number; throughputBytesPerSecond: number }
  /** The guest dirties memory at least as fast as it is sent: only auto-converge's throttling (or post-copy) ends it. */
  | { converging: false; dirtyBytesPerSecond: number; throughputBytesPerSecond: number };

/**
 * The span a dirty rate is measured over (calc-dirty-rate's sample; QEMU's own between two syncs, at least 1 s):
 * what a guest dirties in a longer round is taken as no more than in this span, as the pages it writes again and
 * again (its working set) count once. (Measured: a guest rewriting 64 MiB, 62-94 MiB/s over 1 s, left 57-71 MiB
 * to resend after first passes of 1-3 s.)
 */
export const DIRTY_RATE_WINDOW_MS = 1_000;

/**
 * How far back the first pass's recent pace is taken: memory is laid out in runs (a guest's used pages low, its
 * never-touched zero pages high), so the pace of the last stretch says more of the next one than the average does.
 */
export const RECENT_WINDOW_MS = 200;

/**
 * The time until a running pre-copy ends, from QEMU's own figures. In the first pass (dirty-sync-count 1) QEMU walks
 * all memory once: zero pages go as a header each (`duplicate`), the others in full (`normal`), so a byte of memory
 * costs whatever its kind costs; the rest of the pass is taken at the pace of its last RECENT_WINDOW_MS (a run of
 * zero pages goes ~30x faster than one of used pages). Each later round resends what the guest dirtied during the
 * one before at the throughput QEMU measures (`mbps`; during the first pass, bytes sent over time), until a round
 * fits in the downtime limit (QEMU's own switch-over test), and the switch-over then takes up to the limit. What a
 * round leaves to resend is at most what the guest dirties in DIRTY_RATE_WINDOW_MS. The dirty
 * rate is QEMU's `dirty-pages-rate` once it has one (after its second sync), the calc-dirty-rate sample before.
 * `undefined`: nothing to go by yet.
 */
export function estimateRemaining(input: RemainingInput): RemainingEstimate | undefined {
  const { polls, downtimeLimitMs } = input;
  const now = polls.at(-1);
  if (now === undefined) return undefined;
  const { ram, elapsedMs } = now;
  const pageSize = ram['page-size'] > 0 ? ram['page-size'] : 4096;
  const firstPass = ram['dirty-sync-count'] <= 1;
  if (elapsedMs <= 0 || ram.transferred <= 0 || ram.total <= 0) return undefined;
  const averageThroughput = (ram.transferred * 1000) / elapsedMs;
  // The highest rate QEMU measured over one of its intervals so far (or the average if higher): the first pass's
  // stretches of zero pages send few bytes, and its used pages go slower than a later round's, which are hot.
  const peakMbps = Math.max(...polls.map((p) => p.ram.mbps));
  const throughput = Math.max(averageThroughput, (peakMbps * 1e6) / 8);
  const qemuDirty = ram['dirty-pages-rate'] * pageSize;
  const dirty = !firstPass && qemuDirty > 0 ? qemuDirty : (input.sampledDirtyBytesPerSecond ?? qemuDirty);
  const base = { dirtyBytesPerSecond: dirty, throughputBytesPerSecond: throughput };
  let roundMs: number;
  if (firstPass) {
    const pace = firstPassPace(polls);
    if (pace === undefined) return undefined;
    roundMs = ram.remaining / pace;
  } else roundMs = (ram.remaining * 1000) / throughput;
  // Dirtied since the last sync: all the first pass's time (it began with one), else at least this round's rest.
  const sinceSyncMs = firstPass ? elapsedMs + roundMs : roundMs;
  let totalMs = roundMs;
  const fits = (bytes: number) => bytes <= (throughput * downtimeLimitMs) / 1000;
  const done = (ms: number): RemainingEstimate => ({ converging: true, remainingMs: Math.round(ms + downtimeLimitMs), ...base });
  if (!firstPass && fits(ram.remaining)) return done(0);
  const dirtied = (ms: number) => Math.min(ram.total, (dirty * Math.min(ms, DIRTY_RATE_WINDOW_MS)) / 1000);
  let pending = dirtied(sinceSyncMs);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (fits(pending)) return done(totalMs);
    if (dirty >= throughput) break;
    roundMs = (pending * 1000) / throughput;
    totalMs += roundMs;
    pending = dirtied(roundMs);
  }
  return { converging: false, ...base };
}

/** Bytes of memory the first pass covers per ms lately (over RECENT_WINDOW_MS, or since it began). */
function firstPassPace(polls: readonly MigrationPoll[]): number | undefined {
  const now = polls.at(-1)!;
  let from: { elapsedMs: number; remaining: number } = { elapsedMs: 0, remaining: now.ram.total };
  for (let i = polls.length - 2; i >= 0; i--) {
    const p = polls[i]!;
    if (p.ram['dirty-sync-count'] > 1 || p.ram.total !== now.ram.total) break;
    if (now.elapsedMs - p.elapsedMs >= RECENT_WINDOW_MS) {
      from = { elapsedMs: p.elapsedMs, remaining: p.ram.remaining };
      break;
    }
  }
  const covered = from.remaining - now.ram.remaining;
  const ms = now.elapsedMs - from.elapsedMs;
  if (covered > 0 && ms > 0) return covered / ms;
  // Nothing covered lately (a loaded host stalls the migration thread now and then): the pass's own average.
  const all = now.ram.total - now.ram.remaining;
  return all > 0 ? all / now.elapsedMs : undefined;
}
