import { VirtnodeError } from '../lib/errors.ts';
import type { StatePaths } from '../lib/paths.ts';
import type { Instance } from './model.ts';

/** Quotes one argument for the remote POSIX shell that sshd runs commands with. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/**
 * The system `ssh` argv to reach a launched instance with strict host key checking against virtnode's own
 * known_hosts (the keys virtnode generated and injected), so the first connection is already verified.
 */
export function sshArgv(paths: StatePaths, instance: Instance, command: string[] = [], options: { tty?: boolean; connectTimeoutS?: number } = {}): string[] {
  const ssh = instance.spec.ssh;
  if (ssh === undefined) {
    throw new VirtnodeError('INVALID_STATE', `instance ${instance.name} was not launched from an image, so it has no SSH access`, {
      hint: `use \`virtnode console ${instance.name}\``,
    });
  }
  if ((ssh.hostPort === undefined && ssh.address === undefined) || (instance.state !== 'running' && instance.state !== 'paused')) {
    throw new VirtnodeError('INVALID_STATE', `instance ${instance.name} is ${instance.state}`, { hint: `start it with \`virtnode start ${instance.name}\`` });
  }
  const argv = [
    'ssh',
    '-i', ssh.identityFile,
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${paths.knownHosts}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'LogLevel=ERROR',
    '-o', `ConnectTimeout=${options.connectTimeoutS ?? 10}`,
    '-p', String(ssh.address === undefined ? ssh.hostPort : ssh.guestPort),
  ];
  if (options.tty === true) argv.push('-t');
  if (options.tty === false) argv.push('-T');
  argv.push(`${ssh.user}@${ssh.address ?? '127.0.0.1'}`);
  if (command.length > 0) argv.push('--', command.map(shellQuote).join(' '));
  return argv;
}
