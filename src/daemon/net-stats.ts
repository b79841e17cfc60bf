import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NicCounters } from '../instances/driver.ts';

export const SYS_CLASS_NET = '/sys/class/net';

/** Traffic of a guest NIC, seen from the guest. */
export type { NicCounters };

function counter(dir: string, file: string): number {
  const value = Number(readFileSync(join(dir, file), 'utf8').trim());
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${join(dir, file)}: not a counter`);
  return value;
}

/**
 * The counters of a guest's tap NIC from `<sysfsRoot>/<tap>/statistics`. A tap's directions are the host's: what
 * the tap transmits the guest receives, so the tap's tx is the guest's rx and the other way round. Undefined when
 * the tap is gone (the instance stopped between the listing and now) or unreadable.
 */
export function readTapCounters(tap: string, sysfsRoot: string = SYS_CLASS_NET): NicCounters | undefined {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(tap)) return undefined; // an interface name, never a path
  const dir = join(sysfsRoot, tap, 'statistics');
  try {
    return {
      rxBytes: counter(dir, 'tx_bytes'),
      txBytes: counter(dir, 'rx_bytes'),
      rxPackets: counter(dir, 'tx_packets'),
      txPackets: counter(dir, 'rx_packets'),
    };
  } catch {
    return undefined;
  }
}
