import { homedir } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { VirtnodeError } from './errors.ts';
import { validateName } from './names.ts';

/** The state directory: VIRTNODE_HOME, else /var/lib/virtnode for root, else ~/.local/share/virtnode. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env['VIRTNODE_HOME'];
  if (override !== undefined && override !== '') return resolve(override);
  if (process.getuid?.() === 0) return '/var/lib/virtnode';
  const dataHome = env['XDG_DATA_HOME'] || join(homedir(), '.local', 'share');
  return join(dataHome, 'virtnode');
}

/** Joins under `base` and refuses anything that would leave it (defence in depth behind name validation). */
export function within(base: string, ...parts: string[]): string {
  const target = resolve(base, ...parts);
  const rel = relative(base, target);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new VirtnodeError('INVALID', `path ${parts.join('/')} escapes the state directory`);
  }
  return target;
}

export interface StatePaths {
  root: string;
  db: string;
  instances: string;
  cache: string;
  /** virtnode's own known_hosts: the host keys it generated for its instances. */
  knownHosts: string;
  /** virtnode's own SSH client key (authorized in every launched guest). */
  sshDir: string;
  images: string;
  /**
   * Facts about this host that hold until reboot (the KVM probe verdict), shared by every state directory:
   * /run/virtnode for root (tmpfs, emptied at boot), else the state directory's cache.
   */
  hostCache: string;
  instanceDir(name: string): string;
}

export function statePaths(root: string = stateDir()): StatePaths {
  return {
    root,
    db: join(root, 'virtnode.db'),
    instances: join(root, 'instances'),
    cache: join(root, 'cache'),
    knownHosts: join(root, 'ssh', 'known_hosts'),
    sshDir: join(root, 'ssh'),
    images: join(root, 'images'),
    hostCache: process.env['VIRTNODE_HOST_CACHE'] || (process.getuid?.() === 0 ? '/run/virtnode' : join(root, 'cache')),
    instanceDir: (name) => within(join(root, 'instances'), validateName('name', name)),
  };
}
