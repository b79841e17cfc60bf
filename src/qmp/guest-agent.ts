import { randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import { isVirtnodeError, VirtnodeError } from '../lib/errors.ts';
import { withSignal } from '../lib/signal.ts';
import { cancelled, openUnixSocket, sleep } from './abortable.ts';
import { GUEST_AGENT_COMMANDS as GA } from './commands.ts';
import { QmpCommandError } from './connection.ts';
import { LineFramer } from './framing.ts';

export const GUEST_AGENT_TIMEOUT_MS = 10_000;
export const GUEST_EXEC_TIMEOUT_MS = 60_000;
export const GUEST_FSFREEZE_TIMEOUT_MS = 60_000;
/** guest-shutdown sends no reply on success; an error reply comes within this grace period, or not at all. */
export const GUEST_SHUTDOWN_GRACE_MS = 1_000;
const EXEC_POLL_START_MS = 5;
const EXEC_POLL_MAX_MS = 100;
/** Bytes asked for per guest-file-read (the agent caps a read at 48 MB). */
const FILE_READ_CHUNK = 1024 * 1024;
/** The agent writes this byte before its reply to guest-sync-delimited; a client sends it to flush a stale partial request. */
const SYNC_SENTINEL = 0xff;
const MAX_SYNC_ID = 2 ** 31 - 1;
const NOT_AGENT_HINT = 'the guest may still be booting, or may not run qemu-guest-agent';

export interface GuestAgentOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface GuestAgentCommandInfo {
  name: string;
  enabled: boolean;
  /** False for commands that do not answer on success (guest-shutdown, guest-suspend-*). */
  successResponse: boolean;
}

export interface GuestAgentInfo {
  version: string;
  commands: GuestAgentCommandInfo[];
}

export interface GuestIpAddress {
  type: 'ipv4' | 'ipv6';
  address: string;
  prefix: number;
}

export interface GuestNetworkInterface {
  name: string;
  hardwareAddress: string | undefined;
  ipAddresses: GuestIpAddress[];
  /** The guest kernel's counters of the interface (agents since QEMU 2.11 report them). */
  statistics?: { rxBytes: number; rxPackets: number; txBytes: number; txPackets: number };
}

export interface GuestExecResult {
  /** The exit code, or 128 + the signal number when the program was killed by a signal (as shells report it). */
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The signal that killed the program, if one did. */
  signal?: number;
  /** The agent caps captured output (16 MiB in QEMU 7.2); true when some was dropped. */
  truncated?: boolean;
}

export interface GuestExecOptions extends GuestAgentOptions {
  /** Written to the program's standard input, which is then closed. */
  input?: string | Buffer;
  /** The whole environment of the program, as `NAME=value` strings. */
  env?: readonly string[];
}

export type GuestFsfreezeStatus = 'thawed' | 'frozen';

/** Wire shapes (QEMU's qga/qapi-schema.json), only the fields used here. */
interface WireInfo {
  version: string;
  supported_commands: Array<{ name: string; enabled: boolean; 'success-response': boolean }>;
}
interface WireInterface {
  name: string;
  'hardware-address'?: string;
  'ip-addresses'?: Array<{ 'ip-address-type': 'ipv4' | 'ipv6'; 'ip-address': string; prefix: number }>;
  statistics?: { 'rx-bytes'?: number; 'rx-packets'?: number; 'tx-bytes'?: number; 'tx-packets'?: number };
}
function wireStatistics(s: WireInterface['statistics']): { statistics: NonNullable<GuestNetworkInterface['statistics']> } | undefined {
  const counters = [s?.['rx-bytes'], s?.['rx-packets'], s?.['tx-bytes'], s?.['tx-packets']];
  if (!counters.every((c) => typeof c === 'number' && Number.isSafeInteger(c) && c >= 0)) return undefined;
  const [rxBytes, rxPackets, txBytes, txPackets] = counters as number[];
  return { statistics: { rxBytes: rxBytes!, rxPackets: rxPackets!, txBytes: txBytes!, txPackets: txPackets! } };
}

interface WireExecStatus {
  exited: boolean;
  exitcode?: number;
  signal?: number;
  'out-data'?: string;
  'err-data'?: string;
  'out-truncated'?: boolean;
  'err-truncated'?: boolean;
}

/**
 * Client for qemu-guest-agent, reached through the virtio-serial port `org.qemu.guest_agent.0` that QEMU exposes
 * as a chardev UNIX socket. The agent has no greeting, no request ids of its own choosing, and the channel may
 * hold stale output from an earlier session, so a session starts with guest-sync-delimited: a 0xFF byte (the
 * agent drops any partial request), then a random id, answered after a 0xFF sentinel; everything before the
 * sentinel, and any answer with another id, is discarded. Requests run one at a time; after a timeout the
 * next request resyncs first, so a late answer is never taken for the next one.
 */
export class GuestAgent {
  readonly path: string;
  /** Resolves when the socket has closed. Never rejects. */
  readonly closed: Promise<void>;
  private readonly socket: Socket;
  private readonly framer = new LineFramer();
  /** True while bytes are being discarded up to the next 0xFF sentinel. */
  private skipping = false;
  private consumer: ((line: string) => void) | undefined;
  private readonly failureHooks = new Set<(error: VirtnodeError) => void>();
  private failure: VirtnodeError | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private needsSync = true;
  private nextId = 1;

  private constructor(path: string, socket: Socket) {
    this.path = path;
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.fail(new VirtnodeError('QMP_DISCONNECTED', `the guest agent channel at ${path} closed`)));
    socket.on('error', (e) => this.fail(new VirtnodeError('QMP_DISCONNECTED', `the guest agent channel at ${path} failed: ${e.message}`, { cause: e })));
  }

  /** Connects to the agent's socket and synchronises with it (TIMEOUT if the agent does not answer). */
  static async connect(path: string, options: GuestAgentOptions = {}): Promise<GuestAgent> {
    const socket = await openSocket(path, options.signal);
    const agent = new GuestAgent(path, socket);
    try {
      await agent.sync(options);
      return agent;
    } catch (e) {
      agent.close();
      throw e;
    }
  }

  /** Resynchronises: discards whatever the channel holds until the agent echoes a fresh random id. */
  sync(options: GuestAgentOptions = {}): Promise<void> {
    return this.serialize(() => this.doSync(options.timeoutMs ?? GUEST_AGENT_TIMEOUT_MS, options.signal));
  }

  async ping(options: GuestAgentOptions = {}): Promise<void> {
    await this.call(GA.ping, undefined, options);
  }

  async info(options: GuestAgentOptions = {}): Promise<GuestAgentInfo> {
    const info = await this.call<WireInfo>(GA.info, undefined, options);
    return {
      version: info.version,
      commands: info.supported_commands.map((c) => ({ name: c.name, enabled: c.enabled, successResponse: c['success-response'] })),
    };
  }

  async networkGetInterfaces(options: GuestAgentOptions = {}): Promise<GuestNetworkInterface[]> {
    const raw = await this.call<WireInterface[]>(GA.networkGetInterfaces, undefined, options);
    return raw.map((i) => ({
      name: i.name,
      hardwareAddress: i['hardware-address'],
      ipAddresses: (i['ip-addresses'] ?? []).map((a) => ({ type: a['ip-address-type'], address: a['ip-address'], prefix: a.prefix })),
      ...(wireStatistics(i.statistics) ?? {}),
    }));
  }

  /**
   * Runs a program in the guest (no shell unless you run one) and waits for it to exit, polling
   * guest-exec-status. TIMEOUT if it runs longer than `timeoutMs` (it keeps running in the guest).
   */
  async exec(path: string, args: readonly string[] = [], options: GuestExecOptions = {}): Promise<GuestExecResult> {
    const timeoutMs = options.timeoutMs ?? GUEST_EXEC_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const step = (): GuestAgentOptions => withSignal({ timeoutMs: Math.max(Math.min(GUEST_AGENT_TIMEOUT_MS, deadline - Date.now()), 1) }, options.signal);
    const { pid } = await this.call<{ pid: number }>(
      GA.exec,
      {
        path,
        arg: [...args],
        'capture-output': true,
        ...(options.input === undefined ? {} : { 'input-data': Buffer.from(options.input).toString('base64') }),
        ...(options.env === undefined ? {} : { env: [...options.env] }),
      },
      step(),
    );
    const timedOut = (cause?: unknown) =>
      new VirtnodeError('TIMEOUT', `${path} did not finish in the guest within ${timeoutMs} ms (guest pid ${pid})`, {
        hint: 'it is still running in the guest; raise the timeout or run it in the background',
        ...(cause === undefined ? {} : { cause }),
      });
    for (let pollMs = EXEC_POLL_START_MS; ; pollMs = Math.min(pollMs * 2, EXEC_POLL_MAX_MS)) {
      let status: WireExecStatus;
      try {
        status = await this.call<WireExecStatus>(GA.execStatus, { pid }, step());
      } catch (e) {
        // A status request cut short by the exec's own deadline is that deadline, not an agent that went silent.
        if (e instanceof VirtnodeError && e.code === 'TIMEOUT' && Date.now() >= deadline) throw timedOut(e);
        throw e;
      }
      if (status.exited) {
        const result: GuestExecResult = {
          exitCode: status.exitcode ?? 128 + (status.signal ?? 0),
          stdout: Buffer.from(status['out-data'] ?? '', 'base64').toString('utf8'),
          stderr: Buffer.from(status['err-data'] ?? '', 'base64').toString('utf8'),
        };
        if (status.signal !== undefined) result.signal = status.signal;
        if (status['out-truncated'] === true || status['err-truncated'] === true) result.truncated = true;
        return result;
      }
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) throw timedOut();
      await sleep(Math.min(pollMs, remainingMs), options.signal, 'waiting for the guest');
    }
  }

  /** Sets the guest's clock (and its hardware clock) to `ns` nanoseconds since the epoch. */
  async setTime(ns: bigint, options: GuestAgentOptions = {}): Promise<void> {
    // A JSON number: 2^63 ns fits no double exactly, but microsecond precision is plenty for a clock.
    await this.call(GA.setTime, { time: Number(ns) }, options);
  }

  /**
   * Writes `data` into a file in the guest, created when missing (with mode 0666, as the agent creates files: keep
   * secrets in a directory only root can enter). The agent opens without blocking: a FIFO with no reader is refused.
   */
  async writeFile(path: string, data: string | Buffer, options: GuestAgentOptions = {}): Promise<void> {
    const bytes = Buffer.from(data);
    const handle = await this.call<number>(GA.fileOpen, { path, mode: 'w' }, options);
    let written: { count: number };
    try {
      written = await this.call<{ count: number }>(GA.fileWrite, { handle, 'buf-b64': bytes.toString('base64') }, options);
    } catch (e) {
      await this.call(GA.fileClose, { handle }, options).catch(() => {});
      throw e;
    }
    // Closing flushes what the agent buffered: its failure is the write's.
    await this.call(GA.fileClose, { handle }, options);
    if (written.count !== bytes.length) throw new VirtnodeError('COMMAND_FAILED', `the guest agent wrote ${written.count} of ${bytes.length} bytes to ${path}`);
  }

  /** A file's content in the guest, or undefined when there is no such file. */
  async readFile(path: string, options: GuestAgentOptions = {}): Promise<Buffer | undefined> {
    let handle: number;
    try {
      handle = await this.call<number>(GA.fileOpen, { path, mode: 'r' }, options);
    } catch (e) {
      if (e instanceof QmpCommandError && /no such file/i.test(e.desc)) return undefined;
      throw e;
    }
    try {
      const chunks: Buffer[] = [];
      for (;;) {
        const read = await this.call<{ count: number; 'buf-b64': string; eof: boolean }>(GA.fileRead, { handle, count: FILE_READ_CHUNK }, options);
        chunks.push(Buffer.from(read['buf-b64'], 'base64'));
        if (read.eof || read.count === 0) return Buffer.concat(chunks);
      }
    } finally {
      await this.call(GA.fileClose, { handle }, options).catch(() => {});
    }
  }

  /** Freezes the guest's filesystems (for a consistent disk snapshot); returns how many were frozen. */
  fsfreezeFreeze(options: GuestAgentOptions = {}): Promise<number> {
    return this.call<number>(GA.fsfreezeFreeze, undefined, { timeoutMs: GUEST_FSFREEZE_TIMEOUT_MS, ...options });
  }

  /** Thaws them; returns how many were thawed. */
  fsfreezeThaw(options: GuestAgentOptions = {}): Promise<number> {
    return this.call<number>(GA.fsfreezeThaw, undefined, { timeoutMs: GUEST_FSFREEZE_TIMEOUT_MS, ...options });
  }

  fsfreezeStatus(options: GuestAgentOptions = {}): Promise<GuestFsfreezeStatus> {
    return this.call<GuestFsfreezeStatus>(GA.fsfreezeStatus, undefined, options);
  }

  /**
   * Asks the guest OS to power down (or halt, or reboot). The agent does not answer on success, so this
   * resolves when no error has come back within `graceMs`; confirm with QMP (a SHUTDOWN event).
   */
  shutdown(options: { mode?: 'powerdown' | 'halt' | 'reboot'; graceMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    return this.serialize(async () => {
      if (this.needsSync) await this.doSync(GUEST_AGENT_TIMEOUT_MS, options.signal);
      try {
        await this.doRequest(GA.shutdown, { mode: options.mode ?? 'powerdown' }, options.graceMs ?? GUEST_SHUTDOWN_GRACE_MS, options.signal);
      } catch (e) {
        const noAnswer = isVirtnodeError(e, 'TIMEOUT') && options.signal?.aborted !== true;
        if (!noAnswer && !isVirtnodeError(e, 'QMP_DISCONNECTED')) throw e;
      } finally {
        this.needsSync = true;
      }
    });
  }

  /** Closes the socket; a request in flight rejects with QMP_DISCONNECTED. Idempotent. */
  close(): void {
    this.fail(new VirtnodeError('QMP_DISCONNECTED', `the guest agent channel at ${this.path} was closed`));
  }

  /** One request, in turn, resyncing first when an earlier request left the channel in doubt. */
  private call<T>(command: string, args: Record<string, unknown> | undefined, options: GuestAgentOptions): Promise<T> {
    return this.serialize(async () => {
      const timeoutMs = options.timeoutMs ?? GUEST_AGENT_TIMEOUT_MS;
      if (this.needsSync) await this.doSync(timeoutMs, options.signal);
      return (await this.doRequest(command, args, timeoutMs, options.signal)) as T;
    });
  }

  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async doSync(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    const id = randomInt(1, MAX_SYNC_ID);
    this.needsSync = true;
    this.skipping = true;
    this.framer.reset();
    const request = `${JSON.stringify({ execute: GA.syncDelimited, arguments: { id } })}\n`;
    await this.exchange(GA.syncDelimited, Buffer.concat([Buffer.from([SYNC_SENTINEL]), Buffer.from(request)]), timeoutMs, signal, (message, settle) => {
      if (message !== undefined && message['return'] === id) {
        settle({ ok: true, value: undefined });
      } else {
        // Not our sync (an older sync's answer, or noise after a stray 0xFF): wait for the next sentinel.
        this.skipping = true;
        this.framer.reset();
      }
    });
    this.needsSync = false;
  }

  private doRequest(command: string, args: Record<string, unknown> | undefined, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown> {
    const id = this.nextId++;
    const line = `${JSON.stringify({ execute: command, ...(args === undefined ? {} : { arguments: args }), id })}\n`;
    return this.exchange(command, Buffer.from(line), timeoutMs, signal, (message, settle, raw) => {
      if (message === undefined) {
        this.needsSync = true;
        settle({ ok: false, error: new VirtnodeError('QMP_PROTOCOL', `the guest agent answered ${command} with something that is not JSON: ${raw.slice(0, 120)}`) });
        return;
      }
      // The agent echoes our id; an answer carrying another id belongs to an earlier request.
      if ('id' in message && message['id'] !== id) return;
      if ('return' in message) {
        settle({ ok: true, value: message['return'] });
        return;
      }
      const error = (typeof message['error'] === 'object' && message['error'] !== null ? message['error'] : {}) as { class?: unknown; desc?: unknown };
      settle({
        ok: false,
        error: new QmpCommandError(command, typeof error.class === 'string' ? error.class : 'GenericError', typeof error.desc === 'string' ? error.desc : 'no description', {
          peer: 'the guest agent',
        }),
      });
    });
  }

  /**
   * Writes `bytes` and feeds each line that comes back to `onMessage` until it settles. A timeout or an abort
   * leaves the channel in doubt (an answer may still come), so the next request resyncs.
   */
  private exchange(
    command: string,
    bytes: Buffer,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    onMessage: (message: Record<string, unknown> | undefined, settle: (outcome: Outcome) => void, raw: string) => void,
  ): Promise<unknown> {
    if (this.failure !== undefined) {
      return Promise.reject(new VirtnodeError('QMP_DISCONNECTED', `cannot run ${command}: ${this.failure.message}`, { cause: this.failure }));
    }
    if (signal?.aborted) return Promise.reject(cancelled(command, signal));
    return new Promise((resolve, reject) => {
      const settle = (outcome: Outcome) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.failureHooks.delete(onFailure);
        this.consumer = undefined;
        if (outcome.ok) resolve(outcome.value);
        else reject(outcome.error);
      };
      const onFailure = (error: VirtnodeError) => settle({ ok: false, error });
      const onAbort = () => {
        this.needsSync = true;
        settle({ ok: false, error: cancelled(command, signal) });
      };
      const timer = setTimeout(() => {
        this.needsSync = true;
        settle({ ok: false, error: new VirtnodeError('TIMEOUT', `the guest agent did not answer ${command} within ${timeoutMs} ms`, { hint: NOT_AGENT_HINT }) });
      }, timeoutMs);
      this.consumer = (line) => {
        let message: Record<string, unknown> | undefined;
        try {
          const parsed: unknown = JSON.parse(line);
          message = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
        } catch {
          message = undefined;
        }
        onMessage(message, settle, line);
      };
      this.failureHooks.add(onFailure);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.socket.write(bytes);
    });
  }

  private onData(chunk: Buffer): void {
    let rest = chunk;
    while (rest.length > 0 && this.failure === undefined) {
      if (this.skipping) {
        const at = rest.indexOf(SYNC_SENTINEL);
        if (at < 0) return; // stale output from before our sync: drop it
        rest = rest.subarray(at + 1);
        this.skipping = false;
        this.framer.reset();
        continue;
      }
      // One line at a time: handling a line may switch back to skipping for the bytes after it.
      const nl = rest.indexOf(0x0a);
      const piece = nl < 0 ? rest : rest.subarray(0, nl + 1);
      rest = nl < 0 ? rest.subarray(rest.length) : rest.subarray(nl + 1);
      const lines = this.framer.push(piece);
      if (lines === undefined) {
        this.fail(new VirtnodeError('QMP_PROTOCOL', `the guest agent at ${this.path} sent an endless line`));
        return;
      }
      for (const line of lines) this.consumer?.(line); // nobody asked: a late answer, dropped
    }
  }

  private fail(error: VirtnodeError): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.consumer = undefined;
    for (const hook of [...this.failureHooks]) hook(error);
    this.failureHooks.clear();
    this.socket.destroy();
  }
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: VirtnodeError };

async function openSocket(path: string, signal: AbortSignal | undefined): Promise<Socket> {
  try {
    return await openUnixSocket(path, signal, 'the guest agent');
  } catch (error) {
    if (error instanceof VirtnodeError) throw error;
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') {
      throw new VirtnodeError('NOT_FOUND', `no guest agent socket at ${path}`, { cause: e, hint: 'is the instance running with a guest agent channel?' });
    }
    if (e.code === 'EACCES' || e.code === 'EPERM') {
      throw new VirtnodeError('PERMISSION', `not allowed to connect to the guest agent at ${path}`, { cause: e });
    }
    throw new VirtnodeError('QMP_DISCONNECTED', `cannot reach the guest agent at ${path}: ${e.message}`, { cause: e });
  }
}
