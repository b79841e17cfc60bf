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
/** What `virtnode logs` shows without --lines or --all: enough for a boot's last messages, not megabytes. */
export const DEFAULT_LOG_TAIL_LINES = 200;

export interface ReadConsoleLogOptions {
  follow: boolean;
  /** Only the last this many lines of what is in the log now; all of it when undefined. */
  lines?: number;
  /** Gets the log chunk by chunk; a returned promise holds the next read until it settles (backpressure). */
  onData: (chunk: Buffer) => void | Promise<void>;
  signal?: AbortSignal;
}

/** Where the last `lines` lines of the file begin (a last line without its newline counts as a line). */
export function tailOffset(path: string, lines: number): number {
  const size = statSync(path).size;
  if (lines <= 0) return size;
  const fd = openSync(path, 'r');
  try {
    let end = size;
    let newlines = 0;
    let first = true;
    while (end > 0) {
      const start = Math.max(0, end - CHUNK_BYTES);
      const buffer = Buffer.alloc(end - start);
      readSync(fd, buffer, 0, buffer.length, start);
      for (let i = buffer.length - 1; i >= 0; i--) {
        if (buffer[i] !== 0x0a) continue;
        // The newline that ends the file ends the last line; it does not start one.
        if (first && start + i === size - 1) continue;
        if (++newlines === lines) return start + i + 1;
      }
      first = false;
      end = start;
    }
    return 0;
  } finally {
    closeSync(fd);
  }
}

/**
 * Passes an instance's console log to `onData`: all of it or its last `lines` lines, then (with `follow`) what the
 * guest writes next, until `signal` aborts. A log that is truncated or re-created is read again from its start.
 * Reads wait for a slow reader instead of buffering the log in memory. The same function serves `virtnode logs`
 * in-process and the daemon's GET /instances/{name}/console-log, so both print the same bytes.
 */
export async function readConsoleLog(path: string, options: ReadConsoleLogOptions): Promise<void> {
  let offset = options.lines === undefined || !existsSync(path) ? 0 : tailOffset(path, options.lines);
  const readNew = async () => {
    if (options.signal?.aborted || !existsSync(path)) return;
    const size = statSync(path).size;
    if (size < offset) offset = 0;
    if (size === offset) return;
    const fd = openSync(path, 'r');
    try {
      while (offset < size && options.signal?.aborted !== true) {
        const buffer = Buffer.alloc(Math.min(CHUNK_BYTES, size - offset));
        const n = readSync(fd, buffer, 0, buffer.length, offset);
        if (n === 0) break;
        offset += n;
        await options.onData(buffer.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
  };
  // One read at a time: notifications and polls that arrive meanwhile queue behind it. A reader that went away
  // (its wait for room was aborted) ends the reading, not the process.
  let reading: Promise<void> = Promise.resolve();
  const pump = () => (reading = reading.then(readNew).catch(() => {}));
  await pump();
  if (!options.follow || options.signal?.aborted) return;
  const file = basename(path);
  const watcher = (() => {
    try {
      const w = watch(dirname(path), (_event, name) => {
        if (name === null || name === file) void pump();
      });
      w.on('error', () => {});
      return w;
    } catch {
      return undefined; // the poll still delivers
    }
  })();
  const poll = setInterval(() => void pump(), POLL_MS);
  await new Promise<void>((resolve) => {
    if (options.signal === undefined) return; // followed until the process ends
    options.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(poll);
  watcher?.close();
  await reading;
}
