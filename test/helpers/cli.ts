import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shellQuote } from '../../src/instances/ssh.ts';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const VIRTNODE_BIN = join(REPO_ROOT, 'bin', 'virtnode');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `virtnode` command (the built CLI, as users run it) as a separate process. */
export function virtnode(
  home: string,
  args: string[],
  options: { env?: Record<string, string>; input?: string; timeoutMs?: number; cwd?: string; bin?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.bin ?? VIRTNODE_BIN, args, {
      env: { ...process.env, VIRTNODE_HOME: home, ...options.env },
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/**
 * A private state directory (VIRTNODE_HOME) for one test file; `cleanup` kills its QEMUs and any other process
 * still working on it (a network's dnsmasq, a daemon) when the test could not remove them, then removes it.
 */
export function tempHome(prefix = 'virtnode-test-'): { home: string; cleanup: () => void } {
  const home = mkdtempSync(join(tmpdir(), prefix));
  return {
    home,
    cleanup: () => {
      killQemusUnder(home);
      killProcessesUnder(home);
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Kills every QEMU whose pidfile lies under `dir` (what a test started, whatever state it ended in). */
export function killQemusUnder(dir: string): number[] {
  const killed: number[] = [];
  for (const pid of qemuPidsUnder(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      /* already gone */
    }
  }
  return killed;
}

/** Kills every process whose command line names a path under `dir`. */
function killProcessesUnder(dir: string): void {
  for (const entry of readdirSafe('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => a.includes(`${dir}/`))) process.kill(Number(entry), 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
}

export function qemuPidsUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSafe('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string[];
    try {
      if (readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.startsWith('Z')) continue;
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!(cmdline[0] ?? '').includes('qemu-system')) continue;
    if (cmdline.some((a) => a.startsWith(`${dir}/`))) pids.push(Number(entry));
  }
  return pids;
}

function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** Waits until `text` appears in a file (the serial console log), polling; returns the file's content. */
export async function waitForText(path: string, text: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let content = '';
    try {
      content = readFileSync(path, 'utf8');
    } catch {
      /* not yet created */
    }
    if (content.includes(text)) return content;
    if (Date.now() > deadline) throw new Error(`"${text}" did not appear in ${path} within ${timeoutMs} ms; it holds:\n${content.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Runs `virtnode` on a pseudo-terminal (util-linux `script`), for output meant for people at a terminal
 * (progress lines redrawn in place). `script -c` hands the command line to a shell, so every word is quoted.
 */
export function virtnodeOnTerminal(home: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const command = [VIRTNODE_BIN, ...args].map(shellQuote).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { env: { ...process.env, VIRTNODE_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}
