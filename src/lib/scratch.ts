import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { isAlive, selfIdentity } from './proc.ts';

/**
 * Scratch directories outside the state directory (an export is written beside its target, so it can be linked
 * to its name; the sealing appliance's console goes to a temporary file): each is recorded in `<state>/scratch/`
 * with its owner process before it is made, so that the reconcile after a crash of that process finds it and
 * removes it.
 */
function recordsDir(stateRoot: string): string {
  return join(stateRoot, 'scratch');
}

export interface ScratchDir {
  path: string;
  remove(): void;
}

/** Makes `<parent>/<prefix><random>` (mode 0700; never an existing name), recorded first. */
export function makeScratchDir(stateRoot: string, parent: string, prefix: string): ScratchDir {
  const id = randomBytes(8).toString('hex');
  const path = join(parent, `${prefix}${id}`);
  const records = recordsDir(stateRoot);
  mkdirSync(records, { recursive: true, mode: 0o700 });
  // The owner is in the record's name, so a record cut short by a crash is still known to be abandoned.
  const me = selfIdentity();
  const record = join(records, `${me.pid}.${me.start}.${id}`);
  writeFileSync(record, path, { mode: 0o600 });
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (e) {
    rmSync(record, { force: true });
    throw e;
  }
  return {
    path,
    remove: () => {
      rmSync(path, { recursive: true, force: true });
      rmSync(record, { force: true });
    },
  };
}

/** Is any scratch directory recorded (one stat and a readdir: every command asks)? */
export function scratchRecorded(stateRoot: string): boolean {
  const records = recordsDir(stateRoot);
  return existsSync(records) && readdirSync(records).length > 0;
}

/** Removes the scratch directories whose owner process is gone, and their records. */
export function removeAbandonedScratch(stateRoot: string): string[] {
  const records = recordsDir(stateRoot);
  const removed: string[] = [];
  for (const id of existsSync(records) ? readdirSync(records) : []) {
    const [pid, start] = id.split('.');
    if (isAlive({ pid: Number(pid), start: start ?? '' })) continue;
    const record = join(records, id);
    // Empty or cut short: the crash came before the directory was made.
    const path = readFileSync(record, 'utf8');
    if (isAbsolute(path)) {
      rmSync(path, { recursive: true, force: true });
      removed.push(`removed ${path}, left by an interrupted operation`);
    }
    rmSync(record, { force: true });
  }
  return removed;
}
