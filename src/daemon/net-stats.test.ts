import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTapCounters } from './net-stats.ts';

describe('readTapCounters: a tap NIC’s counters from sysfs, seen from the guest', () => {
  const root = mkdtempSync(join(tmpdir(), 'virtnode-sysfs-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const tap = (name: string, files: Record<string, string>) => {
    const dir = join(root, name, 'statistics');
    mkdirSync(dir, { recursive: true });
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  };

  it("swaps directions: the tap's tx is what the guest received", () => {
    tap('vnt0123456789', { rx_bytes: '1000\n', tx_bytes: '2000\n', rx_packets: '10\n', tx_packets: '20\n' });
    expect(readTapCounters('vnt0123456789', root)).toEqual({ rxBytes: 2000, txBytes: 1000, rxPackets: 20, txPackets: 10 });
  });

  it('a missing tap, a missing or garbled counter, or a name that is a path gives undefined', () => {
    expect(readTapCounters('vntgone', root)).toBeUndefined();
    tap('vnthalf', { rx_bytes: '1', tx_bytes: '2', rx_packets: '3' });
    expect(readTapCounters('vnthalf', root)).toBeUndefined();
    tap('vntbad', { rx_bytes: 'x', tx_bytes: '2', rx_packets: '3', tx_packets: '4' });
    expect(readTapCounters('vntbad', root)).toBeUndefined();
    tap('vntok', { rx_bytes: '1', tx_bytes: '2', rx_packets: '3', tx_packets: '4' });
    expect(readTapCounters('../vntok', root)).toBeUndefined();
  });
});
