import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { invalid, VirtnodeError } from '../lib/errors.ts';

/** The gid of a group name (or number), from /etc/group. */
export function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw invalid('--group', `group "${group}" does not exist`, 'create it with `groupadd virtnode`, or name an existing group');
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Listens on a UNIX socket with mode 0660 (owner and `gid` may use the API; nobody else). A socket file
 * nobody answers on is a leftover of a crash and is replaced; a live one means another daemon runs.
 */
export async function listenUnix(app: FastifyInstance, path: string, gid: number | undefined): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  if (existsSync(path)) {
    if (await answers(path)) {
      throw new VirtnodeError('CONFLICT', `a daemon already listens on ${path}`, { hint: 'stop it first, or give another --socket' });
    }
    rmSync(path, { force: true });
  }
  // The socket is made with the process umask: tighten it before it is bound, then set the intended mode.
  const umask = process.umask(0o117);
  try {
    await app.listen({ path });
  } finally {
    process.umask(umask);
  }
  chmodSync(path, 0o660);
  if (gid !== undefined) chownSync(path, -1, gid);
}

/** HOST:PORT, [IPv6]:PORT or PORT (loopback). */
export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+))?:?(\d{1,5})$/.exec(text);
  const port = match === null ? Number.NaN : Number(match[3]);
  if (match === null || !(port > 0 && port < 65536)) throw invalid('--listen', `"${text}" is not HOST:PORT`, 'e.g. 0.0.0.0:8443, [::]:8443 or 127.0.0.1:8443');
  return { host: match[1] ?? match[2] ?? '127.0.0.1', port };
}
