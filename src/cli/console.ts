import { once } from 'node:events';
import { connect } from 'node:net';
import { VirtnodeError } from '../lib/errors.ts';
import type { ApiClient } from '../client/http.ts';
import { DEFAULT_LOG_TAIL_LINES, readConsoleLog } from '../instances/console-log.ts';
import type { InstanceService } from '../instances/service.ts';
import { chooseBackend } from './backend.ts';
import { noConsole } from '../instances/driver.ts';
import { openConsoleStream } from '../instances/console-stream.ts';

const DETACH_BYTE = 0x1d; // Ctrl-]
/** With piped input (`echo cmd | virtnode console vm`): detach once the guest has been quiet this long. */
const PIPED_IDLE_DETACH_MS = 1_500;

/** A connection to a guest's serial console: QEMU's socket, or the daemon's serial hub over a WebSocket. */
export interface ConsoleChannel {
  write(data: Buffer): void;
  onData(listener: (data: Buffer) => void): void;
  /** The console went away (the instance stopped, the daemon closed it). */
  onClose(listener: () => void): void;
  close(): void;
}

/**
 * `virtnode console` and `virtnode logs`, in this process or through the daemon. Through the daemon the console
 * is its serial hub, shared with every browser watching (QEMU's serial socket takes one client).
 */
export interface ConsoleApi {
  open(name: string): Promise<ConsoleChannel>;
  log(name: string, options: LogOptions): Promise<void>;
}

/** `lines` undefined: the whole log so far. */
type LogOptions = { follow: boolean; lines?: number; onData: (chunk: Buffer) => void | Promise<void>; signal: AbortSignal };

export function consoleNotRunning(name: string, state: string): VirtnodeError {
  return new VirtnodeError('INVALID_STATE', `instance ${name} is ${state}: its console exists only while it runs`, {
    hint: `start it with \`virtnode start ${name}\`, or read the past output with \`virtnode logs ${name}\``,
  });
}

const consoleLive = (state: string) => state === 'running' || state === 'paused';

class LocalConsoles implements ConsoleApi {
  private readonly service: InstanceService;

  constructor(service: InstanceService) {
    this.service = service;
  }

  async open(name: string): Promise<ConsoleChannel> {
    const instance = await this.service.get(name);
    if (!consoleLive(instance.state)) throw consoleNotRunning(name, instance.state);
    const endpoints = this.service.driver(instance).consoles(instance);
    const serial = endpoints.serial;
    if (serial === undefined) {
      // A container: its console through lxc-console (the same pty the console log records).
      const stream = openConsoleStream(endpoints);
      if (stream === undefined) throw noConsole(name, 'serial');
      return stream;
    }
    const socket = connect(serial);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', (e) => reject(new VirtnodeError('COMMAND_FAILED', `cannot open the console of ${name}: ${e.message}`, { cause: e })));
    });
    return {
      write: (data) => socket.write(data),
      onData: (listener) => socket.on('data', listener),
      onClose: (listener) => {
        socket.on('close', listener);
        socket.on('error', listener);
      },
      close: () => socket.destroy(),
    };
  }

  async log(name: string, options: LogOptions): Promise<void> {
    const instance = await this.service.get(name); // NOT_FOUND for unknown instances
    await readConsoleLog(this.service.driver(instance).consoles(instance).serialLog, options);
  }
}

const enc = encodeURIComponent;

class RemoteConsoles implements ConsoleApi {
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  async open(name: string): Promise<ConsoleChannel> {
    const instance = (await this.client.request<{ state: string }>('GET', `/instances/${enc(name)}`)).body;
    if (!consoleLive(instance.state)) throw consoleNotRunning(name, instance.state);
    const { openWebSocket } = await import('../client/websocket.ts');
    // No scroll-back: the console shows what comes next, as QEMU's socket does (`virtnode logs` has the past).
    const ws = await openWebSocket(this.client, `/instances/${enc(name)}/console/serial?scrollback=0`);
    return {
      write: (data) => ws.send(data, { binary: true }),
      onData: (listener) => ws.on('message', (data: Buffer) => listener(data)),
      onClose: (listener) => {
        ws.on('close', listener);
        ws.on('error', listener);
      },
      close: () => ws.close(),
    };
  }

  async log(name: string, options: LogOptions): Promise<void> {
    const query = new URLSearchParams();
    if (options.follow) query.set('follow', 'true');
    if (options.lines === undefined) query.set('all', 'true');
    else if (options.lines !== DEFAULT_LOG_TAIL_LINES) query.set('lines', String(options.lines)); // the daemon's default otherwise
    const search = query.size === 0 ? '' : `?${query.toString()}`;
    await this.client.stream(`/instances/${enc(name)}/console-log${search}`, options.onData, options.signal);
  }
}

export function consoleApi(): Promise<ConsoleApi> {
  return chooseBackend<ConsoleApi>(
    async () => new LocalConsoles((await import('./context.ts')).instances()),
    (client) => new RemoteConsoles(client),
  );
}

/** Interactive serial console: raw terminal in, guest output out, Ctrl-] detaches; the terminal is restored. */
export async function attachConsole(api: ConsoleApi, name: string): Promise<void> {
  const channel = await api.open(name);
  const stdin = process.stdin;
  const tty = stdin.isTTY === true;
  process.stderr.write(`Connected to the console of ${name}. Press Ctrl-] to detach.\n`);
  if (tty) stdin.setRawMode(true);
  await new Promise<void>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (tty) stdin.setRawMode(false);
      stdin.pause();
      stdin.unref(); // a pipe still open (Ctrl-] typed into it) must not keep the process alive
      channel.close();
      resolve();
    };
    stdin.on('data', (chunk: Buffer) => {
      const detach = chunk.indexOf(DETACH_BYTE);
      if (detach >= 0) {
        if (detach > 0) channel.write(chunk.subarray(0, detach));
        finish();
        return;
      }
      channel.write(chunk);
    });
    let idle: NodeJS.Timeout | undefined;
    let inputEnded = false;
    const armIdle = () => {
      clearTimeout(idle);
      if (inputEnded) idle = setTimeout(finish, PIPED_IDLE_DETACH_MS);
    };
    stdin.on('end', () => {
      inputEnded = true;
      armIdle();
    });
    channel.onData((chunk) => {
      process.stdout.write(chunk);
      armIdle();
    });
    channel.onClose(() => {
      clearTimeout(idle);
      finish();
    });
    stdin.resume();
  });
  process.stderr.write(`\nDetached from ${name}.\n`);
}

/** Prints the persistent console log; with `follow`, keeps printing what the guest writes next until Ctrl-C. */
export async function printConsoleLog(api: ConsoleApi, name: string, options: { follow: boolean; lines?: number }): Promise<void> {
  const stop = new AbortController();
  const interrupted = () => stop.abort();
  process.once('SIGINT', interrupted);
  try {
    await api.log(name, {
      ...options,
      signal: stop.signal,
      onData: async (chunk) => {
        if (!process.stdout.write(chunk)) await once(process.stdout, 'drain', { signal: stop.signal });
      },
    });
  } finally {
    process.off('SIGINT', interrupted);
  }
}
