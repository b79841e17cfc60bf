/**
 * Who dnsmasq runs as once started, and the directory of the files it reads after that: a virtnode network's
 * reservations and host records live in virtnode's 0700 state directory otherwise, where that user cannot look.
 */
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One directory per network (by its host-wide id), owned by the dnsmasq user, mode 0700. */
export const DNSMASQ_READABLE_ROOT = '/run/virtnode-dnsmasq';

export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
}

/** Debian's dnsmasq packages make a `dnsmasq` user; elsewhere `nobody`. */
export function dnsmasqUser(passwd = '/etc/passwd'): SystemUser {
  const users = new Map<string, SystemUser>();
  for (const line of readFileSync(passwd, 'utf8').split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name !== undefined && uid !== undefined && gid !== undefined && /^\d+$/.test(uid) && /^\d+$/.test(gid)) users.set(name, { name, uid: Number(uid), gid: Number(gid) });
  }
  const user = users.get('dnsmasq') ?? users.get('nobody');
  if (user === undefined) throw new Error(`${passwd} has neither a dnsmasq nor a nobody user`);
  return user;
}

export function dnsmasqReadableDir(networkId: string): string {
  return join(DNSMASQ_READABLE_ROOT, networkId);
}

/** Writes a file dnsmasq re-reads as `user`: in its own directory, readable by that user and root only. */
export function writeDnsmasqReadable(path: string, dir: string, text: string, user: SystemUser): void {
  mkdirSync(DNSMASQ_READABLE_ROOT, { recursive: true, mode: 0o711 });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(dir, user.uid, user.gid);
  writeFileSync(path, text, { mode: 0o600 });
  chownSync(path, user.uid, user.gid);
}
