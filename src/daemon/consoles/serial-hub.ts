import { closeSync, type FSWatcher, openSync, readSync, statSync, watch } from 'node:fs';
import { type ConsoleStream, openConsoleStream } from '../../instances/console-stream.ts';
import { basename, dirname } from 'node:path';

/** How much of the console log a viewer gets when it joins (the terminal's scroll-back). */
export const SCROLLBACK_BYTES = 64 * 1024;
/** The log is also polled, in case a file-system notification is missed (e.g. the file was re-created). */
const POLL_MS = 500;
const READ_CHUNK_BYTES = 256 * 1024;

export interface SerialViewer {
  /** Guest output, in order, never twice. */
  output(data: Buffer): void;
  /** The console went away (the instance stopped): the viewer should close. */
  closed(reason: string): void;
}

export interface SerialSession {
  /** Keystrokes for the guest. */
  input(data: Buffer): void;
  leave(): void;
}

export interface SerialPaths {
  /** QEMU's serial chardev socket (server, one client at a time). */
  socket: string | undefined;
  /** Without a socket: a command whose stdin is the console (a container's lxc-console). */
  command?: string[];
  /** The chardev's log file: everything the guest printed, across restarts. */
  log: string;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function readRange(path: string, start: number, end: number): Buffer {
  if (end <= start) return Buffer.alloc(0);
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(end - start);
    let done = 0;
    while (done < buffer.length) {
      const n = readSync(fd, buffer, done, buffer.length - done, start + done);
      if (n === 0) break;
      done += n;
    }
    return buffer.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

/**
 * One instance's serial console, shared by every viewer. Output comes from the console log that QEMU writes
 * (the same bytes it sends to the socket), so a joining viewer gets the scroll-back up to an exact offset and
 * then everything after it: nothing is lost or shown twice. Input goes to QEMU's serial socket through one
 * connection the hub holds while anyone watches; what QEMU sends on it is drained and dropped (the log has it).
 */
export class SerialHub {
  private readonly paths: SerialPaths;
  private readonly viewers = new Set<SerialViewer>();
  private readonly onEmpty: () => void;
  private offset = 0;
  private socket: ConsoleStream | undefined;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(paths: SerialPaths, onEmpty: () => void = () => {}) {
    this.paths = paths;
    this.onEmpty = onEmpty;
  }

  join(viewer: SerialViewer, scrollbackBytes = SCROLLBACK_BYTES): SerialSession {
    if (this.ended) throw new Error('serial hub already closed');
    if (this.viewers.size === 0 && this.socket === undefined) this.open();
    this.pump(); // bring the offset up to date, so the scroll-back below ends exactly where live output starts
    viewer.output(this.scrollback(scrollbackBytes));
    this.viewers.add(viewer);
    let left = false;
    return {
      input: (data) => {
        if (!left) this.socket?.write(data);
      },
      leave: () => {
        if (left) return;
        left = true;
        this.viewers.delete(viewer);
        if (this.viewers.size === 0) this.close();
      },
    };
  }

  get viewerCount(): number {
    return this.viewers.size;
  }

  private scrollback(bytes: number): Buffer {
    const start = Math.max(0, this.offset - bytes);
    const data = readRange(this.paths.log, start, this.offset);
    if (start === 0) return data;
    // Start on a line boundary rather than in the middle of a line (or of a UTF-8 sequence).
    const newline = data.indexOf(0x0a);
    return newline >= 0 ? data.subarray(newline + 1) : data;
  }

  private open(): void {
    this.offset = fileSize(this.paths.log);
    const socket = openConsoleStream({ serial: this.paths.socket, ...(this.paths.command === undefined ? {} : { serialCommand: this.paths.command }), serialLog: this.paths.log, vnc: undefined });
    if (socket === undefined) throw new Error('a serial hub needs a socket or a command');
    this.socket = socket;
    socket.onData(() => {
      // Drained so QEMU never blocks on us; the same bytes reach the log, which is where output is read.
    });
    socket.onClose(() => {
      if (this.socket !== socket) return;
      this.pump(); // the guest's last words
      this.end('the console closed (the instance is no longer running)');
    });
    const dir = dirname(this.paths.log);
    const file = basename(this.paths.log);
    try {
      this.watcher = watch(dir, (_event, name) => {
        if (name === null || name === file) this.pump();
      });
      this.watcher.on('error', () => {});
    } catch {
      // The poll below still delivers output.
    }
    this.poll = setInterval(() => this.pump(), POLL_MS);
  }

  /** Reads what the log gained since the last read and hands it to every viewer. */
  private pump(): void {
    if (this.ended) return;
    const size = fileSize(this.paths.log);
    if (size < this.offset) this.offset = 0; // truncated or re-created
    while (this.offset < size) {
      const end = Math.min(size, this.offset + READ_CHUNK_BYTES);
      const data = readRange(this.paths.log, this.offset, end);
      if (data.length === 0) break;
      this.offset += data.length;
      for (const viewer of this.viewers) viewer.output(data);
    }
  }

  private end(reason: string): void {
    const viewers = [...this.viewers];
    this.viewers.clear();
    this.close();
    for (const viewer of viewers) viewer.closed(reason);
  }

  private close(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.poll);
    this.watcher?.close();
    const socket = this.socket;
    this.socket = undefined;
    socket?.close();
    this.onEmpty();
  }
}

/** The hubs of all instances with someone watching; a hub exists only while it has viewers. */
export class SerialHubs {
  private readonly hubs = new Map<string, SerialHub>();

  join(instance: string, paths: SerialPaths, scrollbackBytes: number, viewer: SerialViewer): SerialSession {
    let hub = this.hubs.get(instance);
    if (hub === undefined) {
      const created: SerialHub = new SerialHub(paths, () => {
        if (this.hubs.get(instance) === created) this.hubs.delete(instance);
      });
      hub = created;
      this.hubs.set(instance, hub);
    }
    return hub.join(viewer, scrollbackBytes);
  }

  get size(): number {
    return this.hubs.size;
  }
}
