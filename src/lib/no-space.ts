import { statfsSync } from 'node:fs';
import { noSpaceCause, VirtnodeError } from './errors.ts';

/** strerror(ENOSPC) and strerror(EDQUOT) as programs (qemu-img, QEMU's job and command errors) print them. */
export function reportsNoSpace(text: string): boolean {
  return /No space left on device|Disk quota exceeded/.test(text);
}

/** A full disk, named: what could not be written and the directory whose filesystem ran out. */
export class NoSpaceError extends VirtnodeError {
  readonly dir: string;

  constructor(what: string, dir: string, cause: unknown) {
    super('NO_SPACE', `${what}: no space left on the filesystem of ${dir}`, { cause, hint: `free space in ${dir} (df -h ${dir}), then try again` });
    this.dir = dir;
  }
}

/** Below this much free space after a failed write, the filesystem is taken to have filled up. */
const FULL_BELOW_BYTES = 1024 * 1024;

/**
 * Whether the filesystem holding `dir` is (nearly) full now. Root may also write the blocks ext4 reserves
 * for it, so for root the free blocks count, not the available ones.
 */
export function filesystemFull(dir: string): boolean {
  try {
    const fs = statfsSync(dir);
    return (process.getuid?.() === 0 ? fs.bfree : fs.bavail) * fs.bsize < FULL_BELOW_BYTES;
  } catch {
    return false;
  }
}

/**
 * `e` as a NoSpaceError naming `what` and `dir` when the disk was full under it; else `e` itself. A program
 * or QEMU that failed without saying why (QEMU reports a qcow2 write that hit ENOSPC as an I/O error) counts
 * as out of space when the filesystem is full right after.
 */
export function named(e: unknown, what: string, dir: string): unknown {
  if (e instanceof NoSpaceError) return e;
  if (noSpaceCause(e) !== undefined) return new NoSpaceError(what, dir, e);
  if (e instanceof VirtnodeError && ['COMMAND_FAILED', 'QMP_COMMAND', 'INTERNAL'].includes(e.code) && filesystemFull(dir)) return new NoSpaceError(what, dir, e);
  return e;
}

/** Runs `fn`; a full disk under it (a file write, a program, SQLite) becomes NO_SPACE naming `what` and `dir`. */
export async function mapNoSpace<T>(what: string, dir: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw named(e, what, dir);
  }
}

export function mapNoSpaceSync<T>(what: string, dir: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw named(e, what, dir);
  }
}
