import { describe, expect, it } from 'vitest';
import { estimateRemaining, predictMigrationMs, preCopyStalled, type RamProgress } from './predict.ts';

const MiB = 1024 * 1024;

describe('predictMigrationMs', () => {
  it('is one round plus a short last one for an idle guest', () => {
    // 256 MiB at 100 MiB/s: 2560 ms; 0.1 MiB/s dirtied for 2.56 s is 0.256 MiB: 2.56 ms more, under the limit.
    expect(predictMigrationMs({ memoryBytes: 256 * MiB, dirtyBytesPerSecond: 0.1 * MiB, bandwidthBytesPerSecond: 100 * MiB, downtimeLimitMs: 300 })).toBe(2563);
  });

  it('adds the rounds a busy guest needs', () => {
    // Each round is half the previous: 1000, 500, 250 (fits in 300): 1750 ms.
    expect(predictMigrationMs({ memoryBytes: 100 * MiB, dirtyBytesPerSecond: 50 * MiB, bandwidthBytesPerSecond: 100 * MiB, downtimeLimitMs: 300 })).toBe(1750);
  });

  it('says never when the guest dirties memory as fast as the link carries it', () => {
    expect(predictMigrationMs({ memoryBytes: 100 * MiB, dirtyBytesPerSecond: 100 * MiB, bandwidthBytesPerSecond: 100 * MiB, downtimeLimitMs: 300 })).toBeUndefined();
    expect(predictMigrationMs({ memoryBytes: 100 * MiB, dirtyBytesPerSecond: 0, bandwidthBytesPerSecond: 0, downtimeLimitMs: 300 })).toBeUndefined();
  });
});

describe('preCopyStalled', () => {
  it('waits for enough rounds', () => {
    expect(preCopyStalled([{ syncCount: 1, remainingBytes: 100 }, { syncCount: 2, remainingBytes: 100 }, { syncCount: 3, remainingBytes: 100 }])).toBe(false);
    expect(preCopyStalled([])).toBe(false);
  });

  it('is true when the memory left stays flat over two rounds', () => {
    const samples = [3, 4, 5, 6].map((syncCount) => ({ syncCount, remainingBytes: 1000 - syncCount }));
    expect(preCopyStalled(samples)).toBe(true);
  });

  it('is false while the memory left keeps shrinking, judging each round by its last sample', () => {
    const samples = [
      { syncCount: 4, remainingBytes: 5000 },
      { syncCount: 4, remainingBytes: 1000 },
      { syncCount: 5, remainingBytes: 700 },
      { syncCount: 6, remainingBytes: 400 },
    ];
    expect(preCopyStalled(samples)).toBe(false);
  });
});

describe('estimateRemaining', () => {
  const ram = (r: Partial<RamProgress>): RamProgress => ({
    transferred: 0,
    remaining: 1024 * MiB,
    total: 1024 * MiB,
    duplicate: 0,
    normal: 0,
    mbps: 0,
    'dirty-pages-rate': 0,
    'dirty-sync-count': 1,
    'page-size': 4096,
    ...r,
  });

  it('has nothing to go by before QEMU has sent anything', () => {
    expect(estimateRemaining({ polls: [], downtimeLimitMs: 30 })).toBeUndefined();
    expect(estimateRemaining({ polls: [{ elapsedMs: 10, ram: ram({}) }], downtimeLimitMs: 30 })).toBeUndefined();
  });

  it('takes the rest of the first pass at its recent pace, then the switch-over', () => {
    // 200 MiB in the last 200 ms (the first 100 MiB took 400 ms): 724 MiB left is 724 ms, an idle guest, + 30 ms.
    const polls = [
      { elapsedMs: 400, ram: ram({ transferred: 90 * MiB, remaining: 924 * MiB, mbps: 1800 }) },
      { elapsedMs: 600, ram: ram({ transferred: 92 * MiB, remaining: 724 * MiB, mbps: 100 }) },
    ];
    expect(estimateRemaining({ polls, downtimeLimitMs: 30 })).toMatchObject({ converging: true, remainingMs: 754 });
  });

  it("prefers QEMU's own dirty rate once it has one over the sample", () => {
    // Second pass: 100 MiB left at 800 Mbit/s (100 MB/s): 1049 ms; QEMU's 2,560 pages/s (10 MiB/s) dirty 10.5 MiB
    // meanwhile: 110 ms more (over the 3 MB that 30 ms carry); what that dirties (1.1 MiB) fits; then the 30 ms.
    const polls = [{ elapsedMs: 2000, ram: ram({ transferred: 100 * MiB, remaining: 100 * MiB, mbps: 800, 'dirty-sync-count': 2, 'dirty-pages-rate': 2560 }) }];
    const e = estimateRemaining({ polls, downtimeLimitMs: 30, sampledDirtyBytesPerSecond: 500 * MiB });
    expect(e).toMatchObject({ converging: true, dirtyBytesPerSecond: 10 * MiB });
    expect(e?.converging === true && e.remainingMs).toBeLessThan(1049 + 110 + 30 + 20);
    expect(e?.converging === true && e.remainingMs).toBeGreaterThan(1049 + 110 + 30 - 20);
  });

  it('says not converging when the guest dirties memory as fast as it is sent', () => {
    // 40,000 pages/s is 164 MB/s, over the 100 MB/s sent.
    const polls = [{ elapsedMs: 2000, ram: ram({ transferred: 100 * MiB, remaining: 100 * MiB, mbps: 800, 'dirty-sync-count': 3, 'dirty-pages-rate': 40_000 }) }];
    expect(estimateRemaining({ polls, downtimeLimitMs: 30 })).toMatchObject({ converging: false });
  });
});
