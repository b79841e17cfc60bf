import { describe, expect, it } from 'vitest';
import { predictMigrationMs, preCopyStalled } from './predict.ts';

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
