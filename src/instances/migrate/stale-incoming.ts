/**
 * The marker of an incoming move on the target host and its clean-up after a crash. Kept apart from target.ts so
 * the host's reconcile (run at every start) loads only this.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, type ProcessIdentity } from '../../lib/proc.ts';
import { isOurQemu, killQemu } from '../../qemu/process.ts';

/** The file that marks a directory as a move in progress (removed once the guest runs on the target). */
export const INCOMING_MARKER = 'incoming.json';

/**
 * What the target needs to adopt an arriving guest on its own (its record, its policy, the source host, its QEMU),
 * written (0600) when the move is prepared. Without the INCOMING_MARKER beside it the guest may run here: the
 * directory is the cluster's to adopt (src/app/move-arrivals.ts), never a stray for the host's reconcile.
 */
export const ARRIVAL_FILE = 'arrival.json';

/**
 * Removes the moves a crashed target never finished: directories under `instancesDir` that still hold the
 * marker and whose owner (the process that prepared them) is gone; their QEMU, if still alive, is killed.
 * Returns the directories removed. For the host's reconcile.
 */
export async function removeStaleIncoming(instancesDir: string): Promise<string[]> {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(instancesDir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const dir = join(instancesDir, name);
    const marker = join(dir, INCOMING_MARKER);
    if (!existsSync(marker)) continue;
    try {
      const data = JSON.parse(readFileSync(marker, 'utf8')) as { uuid?: string; owner?: ProcessIdentity; qemu?: ProcessIdentity };
      if (data.owner !== undefined && isAlive(data.owner)) continue; // a move still in progress
      if (data.qemu !== undefined && data.uuid !== undefined && isOurQemu(data.qemu, data.uuid)) await killQemu(data.qemu);
    } catch {
      /* an unreadable marker: a write cut short before its QEMU started */
    }
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

/** The names of the instance directories under `instancesDir` that hold an incoming move's marker. */
export function incomingMoves(instancesDir: string): string[] {
  try {
    return readdirSync(instancesDir).filter((name) => existsSync(join(instancesDir, name, INCOMING_MARKER)));
  } catch {
    return [];
  }
}

/** The names of the instance directories that hold an arrival to adopt (a guest that may run here, no marker). */
export function pendingArrivals(instancesDir: string): string[] {
  try {
    return readdirSync(instancesDir).filter((name) => existsSync(join(instancesDir, name, ARRIVAL_FILE)) && !existsSync(join(instancesDir, name, INCOMING_MARKER)));
  } catch {
    return [];
  }
}
