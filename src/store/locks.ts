import { setTimeout as sleep } from 'node:timers/promises';
import { VirtnodeError } from '../lib/errors.ts';
import { isAlive, selfIdentity } from '../lib/proc.ts';
import { type Db, transaction } from './db.ts';

export interface LockOwner {
  name: string;
  pid: number;
  pid_start: string;
  operation: string;
  acquired_at: string;
}

const POLL_MS = 20;

/**
 * Per-instance locks shared by every virtnode process (CLI calls, daemon): a row in the database written in an
 * IMMEDIATE transaction. A lock whose owner process is gone (crash, kill -9) is stale and taken over.
 * Operations on one instance are serialized; different instances never wait on each other.
 */
export async function acquireLock(
  db: Db,
  name: string,
  operation: string,
  options: { waitMs?: number; signal?: AbortSignal } = {},
): Promise<() => void> {
  const me = selfIdentity();
  const deadline = Date.now() + (options.waitMs ?? 120_000);
  for (;;) {
    const holder = transaction(db, () => {
      const row = db.prepare('SELECT * FROM locks WHERE name = ?').get(name) as LockOwner | undefined;
      if (row !== undefined && isAlive({ pid: row.pid, start: row.pid_start })) return row;
      db.prepare('INSERT OR REPLACE INTO locks (name, pid, pid_start, operation, acquired_at) VALUES (?, ?, ?, ?, ?)').run(
        name,
        me.pid,
        me.start,
        operation,
        new Date().toISOString(),
      );
      return undefined;
    });
    if (holder === undefined) return () => releaseLock(db, name, me);
    if (Date.now() >= deadline || options.signal?.aborted) {
      throw new VirtnodeError('BUSY', `instance ${name} is busy: ${holder.operation} by process ${holder.pid} since ${holder.acquired_at}`, {
        hint: 'wait for that operation to finish and retry',
      });
    }
    await sleep(POLL_MS);
  }
}

const RELEASE_RETRY_MS = 1_000;

/**
 * Deletes this process's lock row. It never throws: a release that fails (a full disk: SQLite cannot write)
 * must neither hide the error that ended the operation nor fail one that succeeded. The row names this live
 * process, so it is retried until it goes; a CLI process ends first, and a dead owner's lock is taken over.
 */
function releaseLock(db: Db, name: string, me: { pid: number; start: string }): void {
  try {
    db.prepare('DELETE FROM locks WHERE name = ? AND pid = ? AND pid_start = ?').run(name, me.pid, me.start);
  } catch {
    if (!db.isOpen) return;
    setTimeout(() => releaseLock(db, name, me), RELEASE_RETRY_MS).unref();
  }
}

/** The live owner of a lock, if any (used by reconciliation to tell an interrupted operation from a running one). */
export function lockOwner(db: Db, name: string): LockOwner | undefined {
  const row = db.prepare('SELECT * FROM locks WHERE name = ?').get(name) as LockOwner | undefined;
  return row !== undefined && isAlive({ pid: row.pid, start: row.pid_start }) ? row : undefined;
}

/**
 * Runs `fn` under the lock `name` if it can be taken at once. When it cannot (another operation holds it and
 * will deal with what `fn` would), does nothing and returns undefined.
 */
export async function withLockIfFree<T>(db: Db, name: string, operation: string, fn: () => T | Promise<T>): Promise<T | undefined> {
  let release: () => void;
  try {
    release = await acquireLock(db, name, operation, { waitMs: 0 });
  } catch {
    return undefined;
  }
  try {
    return await fn();
  } finally {
    release();
  }
}
