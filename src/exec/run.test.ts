import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { run } from './run.ts';

const RUN_MODULE = fileURLToPath(new URL('./run.ts', import.meta.url));

/** Gone, or a zombie nobody reaps (PID 1 here is no init): either way it no longer runs. */
function running(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  try {
    return readFileSync(stat, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * A Node process that runs `sh -c 'echo $$; exec sleep 60'` through run() and is then killed with SIGKILL, as a
 * crashed virtnode would be. Returns the pid of the program it ran.
 */
async function programOfKilledParent(diesWithVirtnode: boolean): Promise<number> {
  const script = `
    const { run } = await import(${JSON.stringify(RUN_MODULE)});
    run(['sh', '-c', 'echo $$; exec sleep 60'], { diesWithVirtnode: ${diesWithVirtnode}, onStdout: (c) => process.stdout.write(c) }).catch(() => {});`;
  const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise<number>((resolve, reject) => {
    parent.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    parent.once('exit', () => reject(new Error('the parent ended before its program started')));
  });
  await sleep(200); // the program is sleep now
  parent.kill('SIGKILL');
  await new Promise((resolve) => parent.once('exit', resolve));
  return pid;
}

describe('run', () => {
  it('diesWithVirtnode: the program is killed when the process that ran it dies; without it, it goes on', async () => {
    const tied = await programOfKilledParent(true);
    const free = await programOfKilledParent(false);
    try {
      await expect.poll(() => running(tied), { timeout: 5_000 }).toBe(false);
      expect(running(free)).toBe(true);
    } finally {
      for (const pid of [tied, free]) if (running(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('a program that is not installed is named as missing, with or without diesWithVirtnode', async () => {
    for (const diesWithVirtnode of [false, true]) {
      await expect(run(['qemu-img-not-here', 'info'], { diesWithVirtnode })).rejects.toMatchObject({ code: 'MISSING_PROGRAM', message: 'qemu-img-not-here is not installed' });
    }
    // There, but not a program (a directory): a failure of its own, not a missing program.
    await expect(run(['/etc'], { diesWithVirtnode: true })).rejects.toMatchObject({ code: 'COMMAND_FAILED', exitCode: 126 });
  });

  it('diesWithVirtnode keeps the program\'s own exit code and output', async () => {
    const r = await run(['sh', '-c', 'echo out; echo err >&2; exit 3'], { diesWithVirtnode: true, okCodes: [3] });
    expect(r).toEqual({ stdout: 'out\n', stderr: 'err\n', code: 3 });
  });
});
