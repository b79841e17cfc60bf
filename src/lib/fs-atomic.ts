import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Writes a file so that readers see either the old or the new content, never a torn one: into a new file of an
 * unpredictable name created exclusively (never through a link planted there), then renamed over the old one.
 * Durable (the default): the file and then its directory are fsynced, so after a power cut the rename is there
 * with its content. `durable: false` skips both (the process waits for the disk, some 10 ms) for a file that is
 * written again from the database whenever it matters, so one lost to a power cut costs nothing.
 */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644, options: { durable?: boolean } = {}): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      if (options.durable !== false) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  if (options.durable !== false) fsyncDirectory(dir);
}

/** Makes a rename or a new name in `dir` survive a power cut. */
export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
