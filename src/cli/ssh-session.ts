import { spawn } from 'node:child_process';
import { VirtnodeError } from '../lib/errors.ts';
import { installHint } from '../exec/run.ts';
import type { InstanceService } from '../instances/service.ts';
import { sshArgv } from '../instances/ssh.ts';

/** Runs the system ssh attached to this terminal (interactive shells need it); returns the remote exit code. */
export async function runInteractive(service: InstanceService, name: string, command: string[], options: { tty: boolean }): Promise<number> {
  const tty = options.tty && process.stdin.isTTY === true;
  // `shell` (no command) is always SSH; a command goes through the instance's driver when it has a door of its own.
  const [program, ...args] = command.length === 0 ? sshArgv(service.paths, await service.get(name), command, { tty }) : await service.execArgv(name, command, { tty });
  return new Promise((resolve, reject) => {
    const child = spawn(program!, args, { stdio: 'inherit' });
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new VirtnodeError('MISSING_PROGRAM', `${program} is not installed`, { hint: installHint(program!) }) : e),
    );
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}
