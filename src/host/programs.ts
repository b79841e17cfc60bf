import { constants } from 'node:fs';
import { access, realpath, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import { run } from '../exec/run.ts';
import { isVirtnodeError } from '../lib/errors.ts';
import { readCache, writeCache } from './probe-cache.ts';

export type ProgramState =
  | { state: 'ok'; path: string; version: string; line: string }
  | { state: 'missing'; name: string }
  | { state: 'broken'; path: string; detail: string };

const VERSION_TIMEOUT_MS = 10_000;
const VERSION_CACHE_FILE = 'program-versions.json';

/** The first executable `name` on PATH (or `name` itself when it is a path), without running anything. */
export async function findProgram(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const candidates = isAbsolute(name) ? [name] : (env['PATH'] ?? '').split(delimiter).filter((d) => d !== '').map((d) => join(d, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Identity of an installed binary: changes when the package is upgraded or replaced. */
export async function binaryFingerprint(path: string): Promise<string> {
  const real = await realpath(path);
  const s = await stat(real);
  return `${real}:${s.size}:${s.mtimeMs}:${s.ino}`;
}

/** `QEMU emulator version 7.2.22 (Debian ...)` and `qemu-img version 7.2.22 (...)` → `7.2.22`. */
export function parseQemuVersion(output: string): { version: string; line: string } | undefined {
  const line = output.split('\n').find((l) => /version\s+\d/.test(l))?.trim();
  const m = line === undefined ? null : /version\s+(\d+(?:\.\d+)+)/.exec(line);
  if (line === undefined || m?.[1] === undefined) return undefined;
  return { version: m[1], line };
}

type VersionCache = Record<string, { version: string; line: string }>;

/**
 * Finds `name` and reads its `--version`. With `cacheDir`, the answer is remembered per binary fingerprint
 * (path, size, mtime, inode), so a later call costs a few stat() calls instead of starting the program.
 */
export async function programVersion(
  name: string,
  options: { cacheDir?: string; refresh?: boolean; signal?: AbortSignal } = {},
): Promise<ProgramState> {
  const path = await findProgram(name);
  if (path === undefined) return { state: 'missing', name };
  const fingerprint = await binaryFingerprint(path);
  const cache = options.cacheDir === undefined ? undefined : await readCache<VersionCache>(options.cacheDir, VERSION_CACHE_FILE);
  const hit = options.refresh === true ? undefined : cache?.[fingerprint];
  if (hit !== undefined) return { state: 'ok', path, version: hit.version, line: hit.line };

  let output: string;
  try {
    const result = await run([path, '--version'], {
      timeoutMs: VERSION_TIMEOUT_MS,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    output = result.stdout;
  } catch (e) {
    if (isVirtnodeError(e, 'TIMEOUT') && options.signal?.aborted === true) throw e;
    return { state: 'broken', path, detail: e instanceof Error ? e.message : String(e) };
  }
  const parsed = parseQemuVersion(output);
  if (parsed === undefined) return { state: 'broken', path, detail: `unrecognised --version output: ${output.trim().split('\n')[0] ?? ''}` };
  if (options.cacheDir !== undefined) {
    await writeCache(options.cacheDir, VERSION_CACHE_FILE, { ...(cache ?? {}), [fingerprint]: parsed });
  }
  return { state: 'ok', path, ...parsed };
}
