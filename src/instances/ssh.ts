import { join } from 'node:path';
import { VirtnodeError } from '../lib/errors.ts';
import type { StatePaths } from '../lib/paths.ts';
import type { Instance } from './model.ts';

/**
 * The control socket of an instance's shared SSH connection, in its directory (removed with its runtime files
 * when QEMU stops). The first `ssh` to a running instance (the launch's strictly verified check) becomes the
 * master and stays up for SSH_MUX_PERSIST_S after its last session; later ones (`exec`, `shell`, the readiness
 * checks) open a session on that connection instead of logging in again: no new key exchange, authentication or
 * PAM session, which under TCG costs the guest seconds (measured: 1.3-1.9 s for a login, 0.1 s for a session on
 * the shared connection, at low load).
 */
export const SSH_MUX_SOCKET = 'ssh-mux.sock';
const SSH_MUX_PERSIST_S = 60;
/** ssh binds a temporary name (the path + 17 characters) before renaming it; a UNIX socket path has 107 bytes. */
const SSH_MUX_PATH_MAX = 88;

/** The -o options that share one SSH connection per instance, or none when the socket path would be too long. */
export function sshMuxOptions(paths: StatePaths, instance: Instance): string[] {
  const socket = join(paths.instanceDir(instance.name), SSH_MUX_SOCKET);
  if (Buffer.byteLength(socket) > SSH_MUX_PATH_MAX) return [];
  return [
    '-o', 'ControlMaster=auto',
    '-o', `ControlPath=${socket}`,
    '-o', `ControlPersist=${SSH_MUX_PERSIST_S}`,
    // A master whose guest went away (stopped, rebooted) notices within about 6 s instead of holding sessions.
    '-o', 'ServerAliveInterval=2',
    '-o', 'ServerAliveCountMax=3',
  ];
}

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
    ...sshMuxOptions(paths, instance),
  ];
  if (options.tty === true) argv.push('-t');
  if (options.tty === false) argv.push('-T');
  argv.push(`${ssh.user}@${ssh.address ?? '127.0.0.1'}`);
  if (command.length > 0) argv.push('--', command.map(shellQuote).join(' '));
  return argv;
}
