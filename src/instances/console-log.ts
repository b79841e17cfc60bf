import { closeSync, copyFileSync, existsSync, openSync, readSync, statSync, truncateSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

/** What an instance's console log may grow to before it is rotated (a guest printing in a loop must not fill the disk). */
export const CONSOLE_LOG_MAX_BYTES = Number(process.env['VIRTNODE_CONSOLE_LOG_MAX_BYTES'] ?? 16 * 1024 * 1024);

/**
 * Rotates a console log over the cap: its bytes go to `console.log.1` (replacing the one before) and the log
 * starts again empty. QEMU keeps writing through its O_APPEND descriptor, so its next bytes land at the start of
 * the emptied file, and a follower reads it again from there. Checked at every start, and each second by the
 * daemon while the instance runs; what the guest writes between the copy and the truncation is lost.
 */
export function rotateConsoleLog(path: string, maxBytes = CONSOLE_LOG_MAX_BYTES): boolean {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return false; // no log yet
  }
  if (size <= maxBytes) return false;
  try {
    copyFileSync(path, `${path}.1`);
  } catch {
    // No room for the copy (the disk may be full of this very log): the log is emptied all the same.
  }
  truncateSync(path, 0);
  return true;
}

/** The log is also polled, in case a file-system notification is missed (e.g. the file was re-created). */
const POLL_MS = 500;
const CHUNK_BYTES = 256 * 1024;

/**
 * Passes an instance's console log to `onData`: all of it, then (with `follow`) what the guest writes next, until
 * `signal` aborts. A log that is truncated or re-created is read again from its start. The same function serves
 * `virtnode logs` in-process and the daemon's GET /instances/{name}/console-log, so both print the same bytes.
 */
export async function readConsoleLog(path: string, options: { follow: boolean; onData: (chunk: Buffer) => void; signal?: AbortSignal }): Promise<void> {
  let offset = 0;
  const pump = () => {
    if (!existsSync(path)) return;
    const size = statSync(path).size;
    if (size < offset) offset = 0;
    if (size === offset) return;
    const fd = openSync(path, 'r');
    try {
      while (offset < size) {
        const buffer = Buffer.alloc(Math.min(CHUNK_BYTES, size - offset));
        const n = readSync(fd, buffer, 0, buffer.length, offset);
        if (n === 0) break;
        offset += n;
        options.onData(buffer.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
  };
  pump();
  if (!options.follow || options.signal?.aborted) return;
  const file = basename(path);
  const watcher = (() => {
    try {
      const w = watch(dirname(path), (_event, name) => {
        if (name === null || name === file) pump();
      });
      w.on('error', () => {});
      return w;
    } catch {
      return undefined; // the poll still delivers
    }
  })();
  const poll = setInterval(pump, POLL_MS);
  await new Promise<void>((resolve) => {
    if (options.signal === undefined) return; // followed until the process ends
    options.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(poll);
  watcher?.close();
}
