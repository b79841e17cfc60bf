import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { VirtnodeError } from '../lib/errors.ts';
import { LineFramer } from './framing.ts';

export const QMP_CONNECT_TIMEOUT_MS = 10_000;
export const QMP_COMMAND_TIMEOUT_MS = 30_000;
const CONNECT_RETRY_START_MS = 2;
const CONNECT_RETRY_MAX_MS = 50;

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

/** A QMP `error` reply: QEMU understood the command and refused it. */
export class QmpCommandError extends VirtnodeError {
  readonly qmpClass: string;
  readonly desc: string;
  constructor(command: string, qmpClass: string, desc: string) {
    super('QMP_COMMAND', `QEMU refused ${command}: ${desc} (${qmpClass})`);
    this.qmpClass = qmpClass;
    this.desc = desc;
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: VirtnodeError) => void;
  timer: NodeJS.Timeout;
}

type EventListener = (event: QmpEvent) => void;

/**
 * One QMP session over a UNIX socket: greeting, capability negotiation, commands matched to replies by id,
 * per-command timeouts, events. A garbled message or a closed socket fails every pending command at once
 * (QMP_PROTOCOL / QMP_DISCONNECTED) and the connection is unusable afterwards.
 */
export class QmpConnection {
  readonly greeting: QmpGreeting;
  /** Resolves when the socket has closed, for whatever reason. */
  readonly closed: Promise<void>;
  private readonly socket: Socket;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<EventListener>();
  private nextId = 1;
  private failure: VirtnodeError | undefined;

  private constructor(socket: Socket, greeting: QmpGreeting, framer: LineFramer, leftover: string[]) {
    this.socket = socket;
    this.greeting = greeting;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: string) => {
      for (const line of framer.push(chunk)) this.handleLine(line);
    });
    socket.on('close', () => this.fail(new VirtnodeError('QMP_DISCONNECTED', 'QEMU closed the QMP connection (did it exit?)')));
    socket.on('error', (e) => this.fail(new VirtnodeError('QMP_DISCONNECTED', `QMP connection failed: ${e.message}`, { cause: e })));
    for (const line of leftover) this.handleLine(line);
  }

  /**
   * Connects, retrying while the socket does not exist or refuses (QEMU may still be starting), reads the
   * greeting and negotiates capabilities. A monitor that accepts but never greets is held by another client: BUSY.
   */
  static async connect(path: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<QmpConnection> {
    const timeoutMs = options.timeoutMs ?? QMP_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let delay = CONNECT_RETRY_START_MS;
    let socket: Socket;
    for (;;) {
      try {
        socket = await openSocket(path);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() + delay > deadline || options.signal?.aborted) {
          throw new VirtnodeError('QMP_TIMEOUT', `cannot connect to QMP at ${path}: ${(e as Error).message}`, { cause: e });
        }
        await sleep(delay);
        delay = Math.min(delay * 2, CONNECT_RETRY_MAX_MS);
      }
    }
    socket.setEncoding('utf8');
    const framer = new LineFramer();
    try {
      const lines = await readUntil(socket, framer, Math.max(deadline - Date.now(), 1), (line) => 'QMP' in line, () =>
        new VirtnodeError('BUSY', `QMP monitor at ${path} did not greet: another client may hold it`, {
          hint: 'another virtnode operation may be using this instance; retry when it finishes',
        }),
      );
      const greetingLine = lines.shift()!;
      const connection = new QmpConnection(socket, (greetingLine as { QMP: QmpGreeting }).QMP, framer, lines.map((l) => JSON.stringify(l)));
      await connection.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(deadline - Date.now(), 1_000) });
      return connection;
    } catch (e) {
      socket.destroy();
      throw e;
    }
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: { timeoutMs?: number } = {}): Promise<T> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = `vn-${this.nextId++}`;
    const timeoutMs = options.timeoutMs ?? QMP_COMMAND_TIMEOUT_MS;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new VirtnodeError('QMP_TIMEOUT', `QEMU did not answer ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args === undefined ? {} : { arguments: args }), id })}\n`);
    });
  }

  onEvent(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the first matching event after this call; QMP_TIMEOUT if none comes in time. */
  waitForEvent(match: string[] | ((event: QmpEvent) => boolean), options: { timeoutMs: number; signal?: AbortSignal }): Promise<QmpEvent> {
    const predicate = typeof match === 'function' ? match : (e: QmpEvent) => match.includes(e.event);
    return new Promise((resolve, reject) => {
      const done = (finish: () => void) => {
        clearTimeout(timer);
        unsubscribe();
        this.socket.off('close', onClose);
        options.signal?.removeEventListener('abort', onAbort);
        finish();
      };
      const unsubscribe = this.onEvent((event) => {
        if (predicate(event)) done(() => resolve(event));
      });
      const timer = setTimeout(
        () => done(() => reject(new VirtnodeError('QMP_TIMEOUT', `no ${typeof match === 'function' ? 'matching' : match.join('/')} event within ${options.timeoutMs} ms`))),
        options.timeoutMs,
      );
      const onClose = () => done(() => reject(this.failure ?? new VirtnodeError('QMP_DISCONNECTED', 'QMP connection closed while waiting for an event')));
      const onAbort = () => done(() => reject(new VirtnodeError('TIMEOUT', 'cancelled while waiting for a QMP event')));
      this.socket.once('close', onClose);
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): void {
    this.fail(new VirtnodeError('QMP_DISCONNECTED', 'the QMP connection was closed'));
    this.socket.destroy();
  }

  private handleLine(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
      if (typeof message !== 'object' || message === null) throw new Error('not an object');
    } catch {
      this.fail(new VirtnodeError('QMP_PROTOCOL', `QEMU sent a message that is not JSON: ${line.slice(0, 120)}`));
      this.socket.destroy();
      return;
    }
    if (typeof message['event'] === 'string') {
      for (const listener of [...this.listeners]) listener(message as unknown as QmpEvent);
      return;
    }
    const id = typeof message['id'] === 'string' ? message['id'] : undefined;
    const pending = id === undefined ? undefined : this.pending.get(id);
    if (pending === undefined) return; // a reply to a command that already timed out
    this.pending.delete(id!);
    clearTimeout(pending.timer);
    if ('return' in message) {
      pending.resolve(message['return']);
    } else {
      const error = (message['error'] ?? {}) as { class?: string; desc?: string };
      pending.reject(new QmpCommandError(pending.command, error.class ?? 'GenericError', error.desc ?? 'unknown error'));
    }
  }

  private fail(error: VirtnodeError): void {
    if (this.failure === undefined) this.failure = error;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
      this.pending.delete(id);
    }
  }
}

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Reads messages until one matches; returns it first, followed by any that came with it. */
function readUntil(
  socket: Socket,
  framer: LineFramer,
  timeoutMs: number,
  match: (message: Record<string, unknown>) => boolean,
  onTimeout: () => VirtnodeError,
): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(onTimeout());
    }, timeoutMs);
    const onClose = () => {
      cleanup();
      reject(new VirtnodeError('QMP_DISCONNECTED', 'QEMU closed the QMP connection before greeting'));
    };
    const onData = (chunk: string) => {
      const lines = framer.push(chunk);
      for (let i = 0; i < lines.length; i++) {
        let message: Record<string, unknown>;
        try {
          message = JSON.parse(lines[i]!) as Record<string, unknown>;
        } catch {
          cleanup();
          reject(new VirtnodeError('QMP_PROTOCOL', `expected a QMP greeting, got: ${lines[i]!.slice(0, 120)}`));
          return;
        }
        if (match(message)) {
          cleanup();
          resolve([message, ...lines.slice(i + 1).map((l) => JSON.parse(l) as Record<string, unknown>)]);
          return;
        }
      }
    };
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}
