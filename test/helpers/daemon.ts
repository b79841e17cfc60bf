import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { ApiClient, daemonAnswers } from '../../src/client/http.ts';
import { VIRTNODE_BIN } from './cli.ts';

export interface RunningDaemon {
  child: ChildProcess;
  socket: string;
  api: ApiClient;
  /** Everything it logged (JSON lines on stdout) and printed on stderr. */
  output: () => string;
  logLines: () => Array<Record<string, unknown>>;
  /**
   * Resolves once `logLines()` holds every request the daemon answered before this call: it logs a request after
   * answering it, so a client can have its answer (and a test count the log) before the line is there.
   */
  logCaughtUp: () => Promise<void>;
  /** Milliseconds from spawn until the socket answered. */
  readyMs: number;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/** Runs `virtnode daemon` as a real process on a private state directory and waits until its socket answers. */
export async function startDaemon(home: string, args: string[] = [], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<RunningDaemon> {
  const socket = join(home, 'virtnode.sock');
  const started = performance.now();
  const child = spawn(VIRTNODE_BIN, ['daemon', ...args], { env: { ...process.env, VIRTNODE_HOME: home, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));
  for (;;) {
    if (exitCode !== undefined) throw new Error(`virtnode daemon exited (${exitCode}) before it answered:\n${out}`);
    if (await daemonAnswers(socket, 500)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`virtnode daemon did not answer on ${socket} in time:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const readyMs = performance.now() - started;
  const api = new ApiClient({ kind: 'unix', socket });
  let marks = 0;
  return {
    child,
    socket,
    api,
    output: () => out,
    // Whole lines only: the last may still be arriving.
    logLines: () =>
      out
        .slice(0, out.lastIndexOf('\n') + 1)
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    logCaughtUp: async () => {
      // A request of its own (an unknown path: 404, logged like any other), logged after everything before it.
      const mark = `/log-caught-up/${++marks}`;
      await api.request('GET', mark).catch(() => undefined);
      await eventually(() => (out.includes(`"url":"${mark}"`) ? true : undefined), 10_000, `the daemon's log line of GET ${mark}`);
    },
    readyMs,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}

/**
 * Polls until `check` returns a value (not undefined) or the time is up. Between two checks it waits 100 ms, or
 * as long as the check took if that is longer: a check that runs the CLI costs a Node start, and polling one back
 * to back would keep a core busy that the other test files' guests need (the suite is CPU-bound).
 */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const started = Date.now();
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, Math.max(100, Date.now() - started)));
  }
}
