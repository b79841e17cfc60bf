import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../exec/run.ts';

/**
 * A container's own files are its overlay's upper directory (the image's tree below is shared and read-only):
 * its snapshots, clones and templates are copies of that directory. Copies keep owners, modes, xattrs (overlayfs
 * opaque marks) and whiteouts (0/0 character devices), which `cp -a` and tar with xattrs both carry.
 */
const COPY_TIMEOUT_MS = 30 * 60_000;

/**
 * What makes a container someone: removed from a copy before it is given a new identity. The host keys and
 * machine-id are written again from the seed and by systemd; cloud-init's state goes so that it runs its
 * per-instance modules again; leases, random seed, journal (named by machine-id) and the network files cloud-init
 * rendered for the old MACs go too.
 */
export const IDENTITY_PATHS = [
  'etc/machine-id',
  'etc/hostname',
  'var/lib/dbus/machine-id',
  'var/lib/cloud',
  'var/lib/dhcp',
  'var/lib/systemd/random-seed',
  'var/lib/systemd/credential.secret',
  'var/log/journal',
  'etc/netplan/50-cloud-init.yaml',
  'etc/network/interfaces.d/50-cloud-init',
];
const IDENTITY_GLOBS: Array<{ dir: string; prefix: string }> = [
  { dir: 'etc/ssh', prefix: 'ssh_host_' },
  { dir: 'etc/systemd/network', prefix: '10-cloud-init-' },
];

/** `dst` (which must not exist) becomes an exact copy of `src`. */
export async function copyUpper(src: string, dst: string, options: { signal?: AbortSignal } = {}): Promise<void> {
  await run(['cp', '-a', '--reflink=auto', '-T', src, dst], { timeoutMs: COPY_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) });
}

/** The identity files of a copied upper directory removed (see IDENTITY_PATHS); returns what was there. */
export function sealUpper(upper: string): string[] {
  const removed: string[] = [];
  for (const rel of IDENTITY_PATHS) {
    const path = join(upper, rel);
    if (exists(path)) {
      rmSync(path, { recursive: true, force: true });
      removed.push(`/${rel}`);
    }
  }
  for (const { dir, prefix } of IDENTITY_GLOBS) {
    let entries: string[];
    try {
      entries = readdirSync(join(upper, dir));
    } catch {
      continue;
    }
    for (const entry of entries.filter((e) => e.startsWith(prefix))) {
      rmSync(join(upper, dir, entry), { force: true });
      removed.push(`/${dir}/${entry}`);
    }
  }
  return removed;
}

function exists(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
}

const TAR_XATTRS = ['--xattrs', '--xattrs-include=*', '--acls', '--numeric-owner'];

/** An upper directory as one tar file (a container template's "disk"), identity files left out. */
export async function archiveUpper(upper: string, tarPath: string, options: { signal?: AbortSignal } = {}): Promise<void> {
  const excludes = [...IDENTITY_PATHS.map((p) => `--exclude=./${p}`), ...IDENTITY_GLOBS.map((g) => `--exclude=./${g.dir}/${g.prefix}*`)];
  await run(['tar', '-C', upper, '-cf', tarPath, ...TAR_XATTRS, ...excludes, '.'], { timeoutMs: COPY_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) });
}

/** Unpacks a template's tar into an existing, empty upper directory (owners and whiteouts as they were). */
export async function extractUpper(tarPath: string, upper: string, options: { signal?: AbortSignal } = {}): Promise<void> {
  await run(['tar', '-C', upper, '-xpf', tarPath, ...TAR_XATTRS], { timeoutMs: COPY_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) });
}
