import { describe, expect, it } from 'vitest';
import { formatProgress, progressReporter } from './progress.ts';
import type { DownloadProgress } from './progress.ts';

const KIB = 1024;
const MIB = 1024 * KIB;

function at(received: number, extra: Partial<DownloadProgress> = {}): DownloadProgress {
  return { received, total: 100 * MIB, resumedFrom: 0, bytesPerSecond: 10 * MIB, etaSeconds: (100 * MIB - received) / (10 * MIB), done: false, ...extra };
}

function sink(isTTY: boolean): { out: { write: (t: string) => void; isTTY: boolean }; text: () => string } {
  let text = '';
  return { out: { write: (t: string) => (text += t), isTTY }, text: () => text };
}

describe('formatProgress', () => {
  it('shows percentage, bar, bytes of the whole, rate and ETA', () => {
    expect(formatProgress(at(25 * MIB))).toBe(` 25%  [${'#'.repeat(6)}${' '.repeat(18)}]  25 MiB / 100 MiB  10 MiB/s  ETA 0:08`);
  });

  it('says done at the end and where a resumed transfer began', () => {
    expect(formatProgress(at(100 * MIB, { done: true, resumedFrom: 40 * MIB }), { bar: false })).toBe('100%  100 MiB / 100 MiB  10 MiB/s  done  (resumed at 40 MiB)');
  });

  it('without a known size shows bytes and rate only', () => {
    expect(formatProgress(at(3 * MIB, { total: undefined, etaSeconds: undefined }))).toBe('3 MiB  10 MiB/s');
  });

  it('formats long ETAs with hours', () => {
    expect(formatProgress(at(0, { etaSeconds: 3725 }), { bar: false })).toMatch(/ETA 1:02:05$/);
  });
});

describe('progressReporter', () => {
  it('on a terminal redraws one line in place and ends it with a newline', () => {
    const s = sink(true);
    const report = progressReporter(s.out, 'Downloading');
    report(at(0));
    report(at(50 * MIB)); // within 100 ms of the last draw: skipped
    report(at(100 * MIB, { done: true }));
    const draws = s.text().split('\r\x1b[K').filter((d) => d !== '');
    expect(draws).toHaveLength(2);
    expect(draws[0]).toMatch(/^Downloading {3}0% {2}\[ {24}\]/);
    expect(draws[1]).toMatch(/^Downloading 100% {2}\[#{24}\] .* done\n$/);
    expect(s.text().split('\n')).toHaveLength(2); // one finished line
  });

  it('elsewhere prints a line per 10% step and one final 100% line', () => {
    const s = sink(false);
    const report = progressReporter(s.out, 'Downloading');
    for (let mib = 0; mib <= 100; mib += 1) report(at(mib * MIB));
    report(at(100 * MIB, { done: true }));
    const lines = s.text().trimEnd().split('\n');
    expect(lines.map((l) => /(\d+)%/.exec(l)![1])).toEqual(['0', '10', '20', '30', '40', '50', '60', '70', '80', '90', '100']);
    expect(lines.at(-1)).toMatch(/done$/);
    expect(s.text()).not.toContain('\r');
  });

  it('elsewhere, without a known size, prints a line every 16 MiB', () => {
    const s = sink(false);
    const report = progressReporter(s.out, 'Downloading');
    for (let mib = 1; mib <= 40; mib += 1) report(at(mib * MIB, { total: undefined, etaSeconds: undefined }));
    expect(s.text().trimEnd().split('\n').map((l) => l.split('  ')[0])).toEqual(['Downloading 16 MiB', 'Downloading 32 MiB']);
  });
});
