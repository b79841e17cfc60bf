/**
 * Host paths named in API requests (a disk, a kernel, an image or volume file, a pool, a captured cpuinfo). The
 * host's own users (the UNIX socket, the CLI in-process) may name any file they could open themselves. A client
 * over TCP may name only what lies, links resolved, under a directory the administrator allowed
 * (`virtnode daemon --allow-path DIR`; none by default), and only a regular file where a file is read.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { invalid, VirtnodeError } from '../lib/errors.ts';
import type { Caller } from './resource.ts';

/** `file`: read (must be a regular file); `directory`: used as is; `new-file`: made by the work (must not exist). */
export type PathUse = 'file' | 'directory' | 'new-file';

export function checkRequestPath(allowed: readonly string[], caller: Caller | undefined, field: string, path: string, use: PathUse): void {
  if (caller?.remote !== true) return;
  if (!isAbsolute(path)) throw invalid(field, `"${path}" is not an absolute path`, "name it by its full path on the daemon's host (the CLI resolves relative paths itself)");
  const refused = (why: string) =>
    new VirtnodeError('PERMISSION', `${field}: ${path} ${why}`, {
      field,
      hint: allowed.length === 0 ? 'a client over TCP may name no host path unless the daemon runs with --allow-path DIR' : `allowed: ${allowed.join(', ')} (virtnode daemon --allow-path DIR)`,
    });
  // Links resolved first, so a link inside an allowed directory cannot lead out of it.
  let real: string;
  try {
    real = use === 'new-file' ? join(realpathSync(dirname(path)), basename(path)) : realpathSync(path);
  } catch {
    throw refused('does not exist on the daemon host');
  }
  if (!allowed.some((root) => isWithin(root, real))) throw refused('is outside the directories a client over TCP may name');
  if (use === 'file' && !statSync(real).isFile()) throw refused('is not a regular file');
  if (use === 'directory' && !statSync(real).isDirectory()) throw refused('is not a directory');
  if (use === 'new-file' && existsSync(real)) throw refused('already exists');
}

function isWithin(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The directories given with --allow-path, links resolved, checked once when the daemon starts. */
export function allowedRoots(dirs: readonly string[]): string[] {
  return dirs.map((dir) => {
    if (!isAbsolute(dir)) throw invalid('--allow-path', `"${dir}" is not an absolute path`);
    try {
      const real = realpathSync(dir);
      if (!statSync(real).isDirectory()) throw new Error('not a directory');
      return real;
    } catch {
      throw invalid('--allow-path', `${dir} is not an existing directory`);
    }
  });
}
