/**
 * Timing whole processes for the benchmarks: wall time from spawn to exit, and the CPU time (user + system) the
 * process used, read from the kernel's account of this process's waited-for children (/proc/self/stat), which
 * moves less than wall time on a shared machine.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const TICKS_PER_SECOND = 100;

export interface ProcessRun {
  wallMs: number;
  cpuMs: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** user + system CPU of a process, or of this process's reaped children (`children`), in ms. */
export function cpuMsOf(pid: number | 'self', children = false): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // After the command name: field 3 (state) is fields[0]; utime, stime are 14, 15; cutime, cstime 16, 17.
  const [user, system] = children ? [fields[13], fields[14]] : [fields[11], fields[12]];
  return ((Number(user) + Number(system)) * 1000) / TICKS_PER_SECOND;
}

/** Runs one command to its end (no shell) and times it. */
export function runTimed(argv: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): ProcessRun {
  const cpu0 = cpuMsOf('self', true);
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { env: options.env ?? process.env, input: options.input ?? '', encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 120_000 });
  const wallMs = performance.now() - t0;
  if (r.error) throw r.error;
  return { wallMs, cpuMs: cpuMsOf('self', true) - cpu0, code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const round = (x: number, digits = 1) => Number(x.toFixed(digits));
