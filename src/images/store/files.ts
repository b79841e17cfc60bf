import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { run } from '../../exec/run.ts';

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const XZ_TIMEOUT_MS = 60 * 60_000;

export type Compression = 'xz' | 'gzip';

/** Compression recognised by the file's first bytes (the name may lie, or say nothing). */
export async function detectCompression(path: string): Promise<Compression | undefined> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(XZ_MAGIC.length);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const bytes = head.subarray(0, bytesRead);
    if (bytes.length >= XZ_MAGIC.length && bytes.equals(XZ_MAGIC)) return 'xz';
    if (bytes.length >= GZIP_MAGIC.length && bytes.subarray(0, GZIP_MAGIC.length).equals(GZIP_MAGIC)) return 'gzip';
    return undefined;
  } finally {
    await handle.close();
  }
}

function hashing(hash: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
}

export async function sha256File(path: string, options: { signal?: AbortSignal } = {}): Promise<string> {
  const hash = createHash('sha256');
  const stream = createReadStream(path);
  await pipeline(stream, hashing(hash), async function* (source) {
    for await (const _ of source) {
      /* drain */
    }
  }, options.signal === undefined ? {} : { signal: options.signal });
  return hash.digest('hex');
}

/** Copies `from` to a new file `to` (mode 0600), hashing in the same pass; returns the sha256. */
export async function copyAndHash(from: string, to: string, options: { signal?: AbortSignal } = {}): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(from), hashing(hash), createWriteStream(to, { flags: 'wx', mode: 0o600 }), options.signal === undefined ? {} : { signal: options.signal });
  return hash.digest('hex');
}

/**
 * Decompresses `from` into `dir` (a private scratch directory) and returns the output path and its sha256.
 * gzip is done in-process; xz through the `xz` program, fed a symlink so its output lands in `dir`.
 */
export async function decompress(from: string, compression: Compression, dir: string, options: { signal?: AbortSignal } = {}): Promise<{ path: string; sha256: string }> {
  const out = join(dir, 'decompressed');
  if (compression === 'gzip') {
    const hash = createHash('sha256');
    await pipeline(createReadStream(from), createGunzip(), hashing(hash), createWriteStream(out, { flags: 'wx', mode: 0o600 }), options.signal === undefined ? {} : { signal: options.signal });
    return { path: out, sha256: hash.digest('hex') };
  }
  const link = `${out}.xz`;
  await symlink(from, link);
  try {
    // -f: follow the symlink; -k: leave it (and so the user's file) alone; output is `link` without ".xz".
    await run(['xz', '-d', '-k', '-f', '-q', link], { timeoutMs: XZ_TIMEOUT_MS, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  } finally {
    await rm(link, { force: true });
  }
  return { path: out, sha256: await sha256File(out, options) };
}

/** The file's name without compression and image extensions, made into a DNS label where possible. */
export function defaultImageName(fileName: string): string {
  let stem = basename(fileName).toLowerCase();
  stem = stem.replace(/\.(xz|gz)$/, '').replace(/\.(qcow2|img|raw)$/, '');
  return stem
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
}
