/**
 * A lock file shared by every virtnode process: created with O_EXCL, holding its owner's pid and start time.
 * A lock whose owner is gone (crash, kill -9) is taken over, and the takeover is atomic: a second, short-lived
 * guard file (also O_EXCL) is held while the stale lock is checked again and removed, so two processes that both
 * saw the same dead owner can never remove each other's fresh lock; after the removal, O_EXCL picks one winner.
 */
import { open, readFile, rm, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ProcessIdentity, isAlive, selfIdentity } from './proc.ts';

/** A lock file that stays empty or torn this long was left by a writer that died between create and write. */
const UNREADABLE_STALE_MS = 2_000;
/** A takeover guard lives for a check and an unlink; one older than this was left by a crash. */
const GUARD_STALE_MS = 2_000;
const POLL_MS = 10;

export interface FileLockOptions {
  /** How long to wait for a live owner; 0 fails at once. */
  waitMs: number;
  signal?: AbortSignal;
  /** The error when a live owner keeps it (undefined: the owner is still writing its name). */
  busy: (owner: ProcessIdentity | undefined) => Error;
}

function parseOwner(text: string | undefined): ProcessIdentity | undefined {
  if (text === undefined || text === '') return undefined;
  try {
    const owner = JSON.parse(text) as Partial<ProcessIdentity>;
    return typeof owner.pid === 'number' && typeof owner.start === 'string' ? { pid: owner.pid, start: owner.start } : undefined;
  } catch {
    return undefined;
  }
}

const ageMs = (path: string) => stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);

async function tryCreate(lockPath: string, me: ProcessIdentity): Promise<boolean> {
  try {
    const handle = await open(lockPath, 'wx', 0o600);
    try {
      await handle.writeFile(JSON.stringify(me));
    } finally {
      await handle.close();
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** Is the lock file as seen (`seen`) stale: a dead owner, or unreadable for too long? */
async function isStale(lockPath: string, seen: string | undefined): Promise<boolean> {
  const owner = parseOwner(seen);
  if (owner !== undefined) return !isAlive(owner);
  return seen !== undefined && (await ageMs(lockPath)) > UNREADABLE_STALE_MS;
}

/**
 * Removes the lock file if it still holds exactly `seen` and is still stale, under the takeover guard. Returns
 * without doing anything when another process is taking it over right now.
 */
export async function takeOverStale(lockPath: string, seen: string): Promise<void> {
  const guard = `${lockPath}.takeover`;
  let handle;
  try {
    handle = await open(guard, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    if ((await ageMs(guard)) > GUARD_STALE_MS) await rm(guard, { force: true });
    return;
  }
  try {
    const now = await readFile(lockPath, 'utf8').catch(() => undefined);
    if (now === seen && (await isStale(lockPath, now))) await rm(lockPath, { force: true });
  } finally {
    await handle.close();
    await rm(guard, { force: true });
  }
}

/** Takes the lock at `lockPath`; resolves to its release. */
export async function acquireFileLock(lockPath: string, options: FileLockOptions): Promise<() => Promise<void>> {
  const me = selfIdentity();
  const deadline = Date.now() + options.waitMs;
  for (;;) {
    options.signal?.throwIfAborted();
    if (await tryCreate(lockPath, me)) return () => rm(lockPath, { force: true });
    const seen = await readFile(lockPath, 'utf8').catch(() => undefined);
    if (seen !== undefined && (await isStale(lockPath, seen))) {
      await takeOverStale(lockPath, seen);
      await sleep(POLL_MS); // when another process holds the guard, give it time to finish
      continue;
    }
    if (Date.now() >= deadline) throw options.busy(parseOwner(seen));
    await sleep(POLL_MS);
  }
}
