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
