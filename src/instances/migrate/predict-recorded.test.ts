/**
 * The expected time left against real moves: query-migrate as QEMU 7.2 (TCG) answered it during live moves of a
 * 1 GiB tiny guest, idle and busy (64 MiB rewritten without pause), recorded by bench/migration.ts (BENCH_FRESH=1).
 * Each move's `endMs` is when its migration completed, ms since `migrate` (moves whose polls all fell before 50% of
 * memory, a poll every 100 ms, are left out).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { estimateRemaining, type MigrationPoll } from './predict.ts';

interface RecordedMove {
  name: string;
  downtimeLimitMs: number;
  /** calc-dirty-rate's result, in by 1 s after the start. */
  sampledDirtyMiBps?: number;
  endMs: number;
  polls: MigrationPoll[];
}

const moves = JSON.parse(readFileSync(new URL('./testdata/query-migrate-moves.json', import.meta.url), 'utf8')) as RecordedMove[];
const MiB = 1024 * 1024;

/** The estimate at the first poll past `fraction` of memory covered, and the real time left then. */
function at(move: RecordedMove, fraction: number): { estimateMs: number | undefined; formerMs: number | undefined; realMs: number } {
  const i = move.polls.findIndex((p) => p.ram.remaining <= (1 - fraction) * p.ram.total);
  const now = move.polls[i];
  if (now === undefined) throw new Error(`${move.name}: no poll past ${fraction * 100}%`);
  const e = estimateRemaining({
    polls: move.polls.slice(0, i + 1),
    downtimeLimitMs: move.downtimeLimitMs,
    sampledDirtyBytesPerSecond: now.elapsedMs >= 1000 && move.sampledDirtyMiBps !== undefined ? move.sampledDirtyMiBps * MiB : undefined,
  });
  return {
    estimateMs: e?.converging === true ? e.remainingMs : undefined,
    // What the progress said before: what is left at QEMU's current rate.
    formerMs: now.ram.mbps > 0 ? (now.ram.remaining * 8) / (now.ram.mbps * 1000) : undefined,
    realMs: move.endMs - now.elapsedMs,
  };
}

const errorPct = (estimate: number | undefined, real: number) => (estimate === undefined ? Number.POSITIVE_INFINITY : (Math.abs(estimate - real) / real) * 100);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('estimateRemaining on recorded moves', () => {
  it('has moves of both kinds to go by', () => {
    expect(moves.filter((m) => m.name.includes('idle')).length).toBeGreaterThanOrEqual(3);
    expect(moves.filter((m) => m.name.includes('busy')).length).toBeGreaterThanOrEqual(3);
  });

  for (const fraction of [0.25, 0.5]) {
    it(`at ${fraction * 100}% of memory, is within 100% of the real time left in the median move, and closer than the former figure`, () => {
      const points = moves.map((m) => at(m, fraction));
      const now = median(points.map((p) => errorPct(p.estimateMs, p.realMs)));
      const former = median(points.map((p) => errorPct(p.formerMs, p.realMs)));
      expect(now).toBeLessThan(100);
      expect(now).toBeLessThan(former);
    });
  }

  it('takes the rest of an idle first pass at the pace of its zero pages, not its used ones', () => {
    for (const m of moves.filter((x) => x.name.includes('idle'))) {
      const { estimateMs, realMs } = at(m, 0.5);
      // Never the seconds the used pages' pace would give (a 1 GiB idle move takes a few hundred ms here).
      expect(estimateMs).toBeLessThan(Math.max(3 * realMs, 400));
    }
  });

  it('once QEMU has its own dirty rate (second sync), is within 3x of the real time left', () => {
    for (const m of moves.filter((x) => x.name.includes('busy'))) {
      const i = m.polls.findIndex((p) => p.ram['dirty-sync-count'] >= 2 && p.ram['dirty-pages-rate'] > 0);
      if (i < 0) continue;
      const e = estimateRemaining({ polls: m.polls.slice(0, i + 1), downtimeLimitMs: m.downtimeLimitMs });
      const real = m.endMs - m.polls[i]!.elapsedMs;
      if (e?.converging !== true) throw new Error(`${m.name}: no estimate after the second sync`);
      expect(e.remainingMs).toBeLessThan(3 * real + 100);
      expect(e.remainingMs).toBeGreaterThan(real / 3 - 100);
    }
  });
});
