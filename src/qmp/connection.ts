import type { Socket } from 'node:net';
import { VirtnodeError } from '../lib/errors.ts';
import { reportsNoSpace } from '../lib/no-space.ts';
import { withSignal } from '../lib/signal.ts';
import { cancelled, openUnixSocket, sleep } from './abortable.ts';
import { LineFramer } from './framing.ts';

export const QMP_CONNECT_TIMEOUT_MS = 10_000;
export const QMP_COMMAND_TIMEOUT_MS = 30_000;
const CONNECT_RETRY_START_MS = 2;
const CONNECT_RETRY_MAX_MS = 5;
/** setTimeout fires at once for delays above this; longer waits are treated as "no timeout". */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Socket errors meaning "QEMU is not listening yet": retried until the deadline. */
const NOT_YET_LISTENING = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

export interface QmpGreeting {
  version: QmpVersion;
  capabilities: string[];
}

export interface QmpConnectOptions {
  /** Overall budget: waiting for the socket, the greeting and capability negotiation. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface QmpExecuteOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface QmpWaitForEventOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

export type QmpEventListener = (event: QmpEvent) => void;

/** A QMP `error` reply: QEMU (or the guest agent) understood the command and refused it. */
export class QmpCommandError extends VirtnodeError {
  readonly command: string;
  /** The QMP error class, e.g. `CommandNotFound`, `GenericError`, `DeviceNotFound`. */
  readonly qmpClass: string;
  /** QEMU's own description. */
  readonly desc: string;

  constructor(command: string, qmpClass: string, desc: string, options: { peer?: string; hint?: string } = {}) {
    super(reportsNoSpace(desc) ? 'NO_SPACE' : 'QMP_COMMAND', `${options.peer ?? 'QEMU'} refused ${command}: ${desc} (${qmpClass})`, options.hint === undefined ? {} : { hint: options.hint });
    this.command = command;
    this.qmpClass = qmpClass;
    this.desc = desc;
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: VirtnodeError) => void;
  /** Clears the timer and the abort listener. */
  settle: () => void;
}

type State = 'greeting' | 'open' | 'failed';

/**
 * One QMP session over a UNIX socket: greeting, capability negotiation, commands matched to replies by id,
 * per-command timeouts, events. A garbled message or a closed socket fails every pending command at once
 * (QMP_PROTOCOL / QMP_DISCONNECTED), closes the socket, and the connection is unusable afterwards.
 *
 * QEMU may send an event before the reply to the command that caused it (`quit` sends SHUTDOWN first): call
 * `waitForEvent` before `execute`, then await both.
 */
export class QmpConnection {
  readonly path: string;
  /** Resolves when the socket has closed, for whatever reason. Never rejects. */
  readonly closed: Promise<void>;
  private readonly socket: Socket;
  private readonly framer = new LineFramer();
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<QmpEventListener>();
  /** Told once when the connection fails, so waiters do not outlive it. */
  private readonly failureHooks = new Set<(error: VirtnodeError) => void>();
  private state: State = 'greeting';
  private greetingValue: QmpGreeting | undefined;
  /** Set while connect() waits for the greeting. */
  private greetedHook: (() => void) | undefined;
  private failure: VirtnodeError | undefined;
  private nextId = 1;

  private constructor(path: string, socket: Socket) {
    this.path = path;
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.fail(new VirtnodeError('QMP_DISCONNECTED', `QEMU closed the QMP connection at ${path} (did it exit?)`)));
    socket.on('error', (e) => this.fail(new VirtnodeError('QMP_DISCONNECTED', `the QMP connection at ${path} failed: ${e.message}`, { cause: e })));
  }

  /**
   * Connects, retrying while the socket does not exist or refuses (QEMU may still be starting), reads the
   * greeting and negotiates capabilities, all within `timeoutMs`. QEMU's monitor serves one client at a time:
   * a monitor that accepts but never greets is held by another client, which is BUSY (not QMP_TIMEOUT).
   */
  static async connect(path: string, options: QmpConnectOptions = {}): Promise<QmpConnection> {
    const timeoutMs = options.timeoutMs ?? QMP_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const socket = await openWithRetry(path, deadline, timeoutMs, options.signal);
    const connection = new QmpConnection(path, socket);
    try {
      await connection.awaitGreeting(deadline, options.signal);
      await connection.execute('qmp_capabilities', undefined, withSignal({ timeoutMs: Math.max(deadline - Date.now(), 1) }, options.signal));
      return connection;
    } catch (e) {
      const reason = connection.failure; // a garbled greeting or a hang-up explains more than its consequence
      connection.close();
      throw reason ?? e;
    }
  }

  /** What QEMU said when we connected: its version and the capabilities it offered. */
  get greeting(): QmpGreeting {
    if (this.greetingValue === undefined) throw new VirtnodeError('INTERNAL', 'QMP greeting read before it arrived');
    return this.greetingValue;
  }

  /** Why the connection is unusable, once it is. */
  get error(): VirtnodeError | undefined {
    return this.failure;
  }

  /**
   * Runs a QMP command and resolves with its `return` value. Rejects with QMP_COMMAND (a QmpCommandError
   * carrying QEMU's class and description) when QEMU refuses, QMP_TIMEOUT when it does not answer in time
   * (a late answer is then ignored), QMP_DISCONNECTED when the connection is or becomes closed.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: QmpExecuteOptions = {}): Promise<T> {
    if (this.failure !== undefined) {
      return Promise.reject(
        new VirtnodeError('QMP_DISCONNECTED', `cannot run ${command}: the QMP connection at ${this.path} is closed (${this.failure.message})`, { cause: this.failure }),
      );
    }
    if (options.signal?.aborted) return Promise.reject(cancelled(command, options.signal));
    const id = `vn-${this.nextId++}`;
    const timeoutMs = options.timeoutMs ?? QMP_COMMAND_TIMEOUT_MS;
    return new Promise<T>((resolve, reject) => {
      const signal = options.signal;
      const onAbort = () => {
        entry.settle();
        this.pending.delete(id);
        reject(cancelled(command, signal));
      };
      const timer =
        timeoutMs > MAX_TIMER_MS
          ? undefined
          : setTimeout(() => {
              entry.settle();
              this.pending.delete(id);
              reject(new VirtnodeError('QMP_TIMEOUT', `QEMU did not answer ${command} within ${timeoutMs} ms`, { hint: 'QEMU may be hung or overloaded' }));
            }, timeoutMs);
      const entry: Pending = {
        command,
        resolve: resolve as (value: unknown) => void,
        reject,
        settle: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, entry);
      this.socket.write(`${JSON.stringify({ execute: command, ...(args === undefined ? {} : { arguments: args }), id })}\n`);
    });
  }

  /** Calls `listener` for every event from now on; returns the unsubscribe function. */
  onEvent(listener: QmpEventListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Resolves with the first event after this call whose name is in `match` (or that `match` accepts).
   * QMP_TIMEOUT if none comes in time, QMP_DISCONNECTED if the connection is or becomes closed.
   */
  waitForEvent(match: readonly string[] | ((event: QmpEvent) => boolean), options: QmpWaitForEventOptions): Promise<QmpEvent> {
    const what = typeof match === 'function' ? 'matching' : match.join('/');
    if (this.failure !== undefined) {
      return Promise.reject(new VirtnodeError('QMP_DISCONNECTED', `cannot wait for a ${what} event: the QMP connection at ${this.path} is closed`, { cause: this.failure }));
    }
    if (options.signal?.aborted) return Promise.reject(cancelled(`a ${what} event`, options.signal));
    const predicate = typeof match === 'function' ? match : (e: QmpEvent) => match.includes(e.event);
    return new Promise((resolve, reject) => {
      const signal = options.signal;
      const finish = (outcome: () => void) => {
        clearTimeout(timer);
        unsubscribe();
        this.failureHooks.delete(onFailure);
        signal?.removeEventListener('abort', onAbort);
        outcome();
      };
      const unsubscribe = this.onEvent((event) => {
        if (predicate(event)) finish(() => resolve(event));
      });
      const onFailure = (error: VirtnodeError) =>
        finish(() => reject(new VirtnodeError('QMP_DISCONNECTED', `the QMP connection closed while waiting for a ${what} event: ${error.message}`, { cause: error })));
      const onAbort = () => finish(() => reject(cancelled(`a ${what} event`, signal)));
      const timer =
        options.timeoutMs > MAX_TIMER_MS
          ? undefined
          : setTimeout(() => finish(() => reject(new VirtnodeError('QMP_TIMEOUT', `no ${what} event from QEMU within ${options.timeoutMs} ms`))), options.timeoutMs);
      this.failureHooks.add(onFailure);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Closes the connection; pending commands and event waits reject with QMP_DISCONNECTED. Idempotent. */
  close(): void {
    this.fail(new VirtnodeError('QMP_DISCONNECTED', `the QMP connection at ${this.path} was closed`));
  }

  private awaitGreeting(deadline: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.greetingValue !== undefined) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const finish = (outcome: () => void) => {
        clearTimeout(timer);
        this.failureHooks.delete(onFailure);
        signal?.removeEventListener('abort', onAbort);
        outcome();
      };
      const onFailure = (error: VirtnodeError) => finish(() => reject(error));
      const onAbort = () => finish(() => reject(cancelled(`connecting to QMP at ${this.path}`, signal)));
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new VirtnodeError('BUSY', `QMP monitor at ${this.path} did not greet: another client may hold it`, {
                hint: 'QEMU serves one QMP client at a time; retry when the other operation on this instance finishes',
              }),
            ),
          ),
        Math.max(deadline - Date.now(), 0),
      );
      this.greetedHook = () => finish(resolve);
      this.failureHooks.add(onFailure);
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private onData(chunk: Buffer): void {
    const lines = this.framer.push(chunk);
    if (lines === undefined) {
      this.fail(new VirtnodeError('QMP_PROTOCOL', `QEMU sent a message of more than ${this.framer.pendingBytes} bytes without a line end on ${this.path}`));
      return;
    }
    for (const line of lines) {
      if (this.state === 'failed') return; // a bad line earlier in this chunk ended the session
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      message = undefined;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      this.fail(new VirtnodeError('QMP_PROTOCOL', `QEMU sent a message that is not a JSON object on ${this.path}: ${line.slice(0, 120)}`));
      return;
    }
    const m = message as Record<string, unknown>;
    if (this.state === 'greeting') {
      if (typeof m['QMP'] !== 'object' || m['QMP'] === null) {
        this.fail(new VirtnodeError('QMP_PROTOCOL', `expected a QMP greeting on ${this.path}, got: ${line.slice(0, 120)}`, { hint: 'is this socket a QMP monitor?' }));
        return;
      }
      this.greetingValue = m['QMP'] as QmpGreeting;
      this.state = 'open';
      this.greetedHook?.();
      this.greetedHook = undefined;
      return;
    }
    if (typeof m['event'] === 'string') {
      for (const listener of [...this.listeners]) {
        try {
          listener(m as unknown as QmpEvent);
        } catch {
          // A faulty listener must not break the session or starve the other listeners.
        }
      }
      return;
    }
    const id = m['id'];
    const pending = typeof id === 'string' ? this.pending.get(id) : undefined;
    if (pending === undefined || typeof id !== 'string') return; // the answer to a command that timed out or was cancelled
    this.pending.delete(id);
    pending.settle();
    if ('return' in m) {
      pending.resolve(m['return']);
      return;
    }
    const error = (typeof m['error'] === 'object' && m['error'] !== null ? m['error'] : {}) as { class?: unknown; desc?: unknown };
    pending.reject(
      new QmpCommandError(pending.command, typeof error.class === 'string' ? error.class : 'GenericError', typeof error.desc === 'string' ? error.desc : 'no description'),
    );
  }

  /** Ends the session once: rejects everything pending with `error`, tells the waiters, closes the socket. */
  private fail(error: VirtnodeError): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.state = 'failed';
    this.greetedHook = undefined;
    for (const pending of this.pending.values()) {
      pending.settle();
      pending.reject(error);
    }
    this.pending.clear();
    for (const hook of [...this.failureHooks]) hook(error);
    this.failureHooks.clear();
    this.listeners.clear();
    this.socket.destroy();
  }
}

/** Opens the UNIX socket, retrying with a short backoff while QEMU is not listening yet. */
async function openWithRetry(path: string, deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<Socket> {
  let delayMs = CONNECT_RETRY_START_MS;
  for (;;) {
    if (signal?.aborted) throw cancelled(`connecting to QMP at ${path}`, signal);
    let lastError: NodeJS.ErrnoException;
    try {
      return await openUnixSocket(path, signal, 'QMP');
    } catch (e) {
      if (e instanceof VirtnodeError) throw e;
      lastError = e as NodeJS.ErrnoException;
    }
    const code = lastError.code ?? '';
    if (code === 'EACCES' || code === 'EPERM') {
      throw new VirtnodeError('PERMISSION', `not allowed to connect to QMP at ${path}: ${lastError.message}`, { cause: lastError, hint: 'run as the user that started QEMU' });
    }
    if (!NOT_YET_LISTENING.has(code)) {
      throw new VirtnodeError('QMP_DISCONNECTED', `cannot connect to QMP at ${path}: ${lastError.message}`, { cause: lastError });
    }
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) {
      throw new VirtnodeError(
        'QMP_TIMEOUT',
        `QMP at ${path} did not accept a connection within ${timeoutMs} ms (${code === 'ENOENT' ? 'no socket' : 'connection refused'})`,
        { cause: lastError, hint: 'is QEMU running? its log may say why it exited' },
      );
    }
    await sleep(Math.min(delayMs, remainingMs), signal, 'waiting for QMP');
    delayMs = Math.min(delayMs * 2, CONNECT_RETRY_MAX_MS);
  }
}

