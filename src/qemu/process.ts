import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { VirtnodeError } from '../lib/errors.ts';
import { type ProcessIdentity, processCmdline, processStartTime } from '../lib/proc.ts';
import { withSignal } from '../lib/signal.ts';
import { installHint } from '../exec/run.ts';
import { QmpConnection } from '../qmp/connection.ts';
import { buildArgv } from './argv.ts';
import type { QemuSpec } from './spec.ts';

export const QEMU_BINARY = 'qemu-system-x86_64';
const QMP_READY_TIMEOUT_MS = 15_000;

export interface SpawnedQemu {
  identity: ProcessIdentity;
  qmp: QmpConnection;
}

/**
 * Starts QEMU detached from us (own session, stdio to a log file), so it outlives this process, and returns once
 * its QMP monitor has negotiated capabilities. QEMU is still paused (-S): the caller sends `cont`.
 * If QEMU exits before QMP is ready, the error carries QEMU's own message from its log.
 */
export async function spawnQemu(
  spec: QemuSpec,
  options: { logPath: string; binary?: string; signal?: AbortSignal; launcher?: readonly string[] },
): Promise<SpawnedQemu> {
  const binary = options.binary ?? QEMU_BINARY;
  const log = openSync(options.logPath, 'a', 0o600);
  // A launcher execs QEMU in place (`ip netns exec NS`), so the child's pid is QEMU's own.
  const [program, ...prefix] = [...(options.launcher ?? []), binary];
  let child;
  try {
    child = spawn(program!, [...prefix, ...buildArgv(spec)], { detached: true, stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => {
      reject(
        e.code === 'ENOENT'
          ? new VirtnodeError('MISSING_PROGRAM', `${binary} is not installed`, { hint: installHint(binary) })
          : new VirtnodeError('COMMAND_FAILED', `could not start ${binary}: ${e.message}`, { cause: e }),
      );
    });
    child.once('exit', (code, signal) => {
      reject(new VirtnodeError('COMMAND_FAILED', `QEMU exited during start-up (${signal ?? `code ${code}`}): ${lastLogLine(options.logPath)}`));
    });
  });
  exited.catch(() => {});
  child.unref();
  try {
    const qmp = await Promise.race([
      QmpConnection.connect(spec.paths.qmp, withSignal({ timeoutMs: QMP_READY_TIMEOUT_MS }, options.signal)),
      exited,
    ]);
    const pid = child.pid!;
    const start = processStartTime(pid);
    if (start === undefined) {
      qmp.close();
      throw new VirtnodeError('COMMAND_FAILED', `QEMU exited during start-up: ${lastLogLine(options.logPath)}`);
    }
    child.removeAllListeners('exit');
    return { identity: { pid, start }, qmp };
  } catch (e) {
    if (child.pid !== undefined && child.exitCode === null) child.kill('SIGKILL');
    throw e;
  }
}

export function lastLogLine(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    return (lines.at(-1) ?? '').replace(/^\S+Z qemu-system-x86_64: /, '') || 'no message';
  } catch {
    return 'no message';
  }
}

/**
 * True if `identity` is a live QEMU started for the VM with this UUID (guards against pid reuse and against
 * killing an unrelated process).
 */
export function isOurQemu(identity: ProcessIdentity, uuid: string): boolean {
  if (processStartTime(identity.pid) !== identity.start) return false;
  const cmdline = processCmdline(identity.pid);
  const at = cmdline.indexOf('-uuid');
  return at >= 0 && cmdline[at + 1] === uuid;
}

/** Reads QEMU's pidfile; used when a crash happened before the pid reached the database. */
export function readPidfile(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Waits until the process is gone (polling /proc: it is not our child, so no exit event is available). */
export async function waitForExit(identity: ProcessIdentity, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 2;
  while (processStartTime(identity.pid) === identity.start) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 50);
  }
  return true;
}

export async function killQemu(identity: ProcessIdentity, timeoutMs = 5_000): Promise<void> {
  try {
    process.kill(identity.pid, 'SIGKILL');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
  if (!(await waitForExit(identity, timeoutMs))) {
    throw new VirtnodeError('INTERNAL', `QEMU process ${identity.pid} did not exit after SIGKILL`);
  }
}
