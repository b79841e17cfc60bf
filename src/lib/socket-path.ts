import { join } from 'node:path';
import { stateDir } from './paths.ts';

/**
 * Where the daemon listens and the CLI looks for it: VIRTNODE_SOCKET; else in VIRTNODE_HOME when that is set
 * (so a private state directory has a private daemon); else /run/virtnode for root; else the state directory.
 */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['VIRTNODE_SOCKET'];
  if (explicit !== undefined && explicit !== '') return explicit;
  const home = env['VIRTNODE_HOME'];
  if ((home === undefined || home === '') && process.getuid?.() === 0) return '/run/virtnode/virtnode.sock';
  return join(stateDir(env), 'virtnode.sock');
}
