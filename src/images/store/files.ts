import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, stat, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { run } from '../../exec/run.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { formatSize } from '../../lib/units.ts';
import { type SizeLimit, imageSizeLimit } from '../size-limit.ts';

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

/** Reports bytes done of a whole (`total` undefined when unknown). */
export type FileProgress = (done: number, total: number | undefined) => void;

export interface FileOptions {
  signal?: AbortSignal;
  onProgress?: FileProgress;
}

const XZ_POLL_INTERVAL_MS = 250;

/** A pass-through stream that hashes what flows through it and, optionally, counts it. */
function tap(hash: ReturnType<typeof createHash>, onBytes?: (done: number) => void): Transform {
  let done = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      done += chunk.length;
      onBytes?.(done);
      callback(null, chunk);
    },
  });
}

function pipelineOptions(options: FileOptions): { signal?: AbortSignal } {
  return options.signal === undefined ? {} : { signal: options.signal };
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

export async function sha256File(path: string, options: FileOptions = {}): Promise<string> {
  const hash = createHash('sha256');
  const total = await sizeOf(path);
  const onBytes = options.onProgress === undefined ? undefined : (done: number) => options.onProgress!(done, total);
  await pipeline(
    createReadStream(path),
    tap(hash, onBytes),
    async function* (source) {
      for await (const _ of source) {
        /* drain */
      }
    },
    pipelineOptions(options),
  );
  return hash.digest('hex');
}

/** Copies `from` to a new file `to` (mode 0600), hashing in the same pass; returns the sha256. */
export async function copyAndHash(from: string, to: string, options: FileOptions = {}): Promise<string> {
  const hash = createHash('sha256');
  const total = await sizeOf(from);
  const onBytes = options.onProgress === undefined ? undefined : (done: number) => options.onProgress!(done, total);
  await pipeline(createReadStream(from), tap(hash, onBytes), createWriteStream(to, { flags: 'wx', mode: 0o600 }), pipelineOptions(options));
  return hash.digest('hex');
}

/** Room left on the state directory's filesystem after a decompression, for the database and logs. */
function tooLarge(limit: SizeLimit, declared?: number): VirtnodeError {
  const size = declared === undefined ? `more than ${formatSize(limit.bytes)}` : formatSize(declared);
  return new VirtnodeError('INVALID', `it decompresses to ${size}, over ${limit.why}`, { hint: 'free space, or decompress it elsewhere and import the image itself' });
}

/** Passes bytes on until `limit` is passed, then fails the pipeline (its output is removed by the caller). */
function capped(limit: SizeLimit): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      done(seen > limit.bytes ? tooLarge(limit) : null, chunk);
    },
  });
}

/** The uncompressed size an .xz file declares in its index (`xz --robot --list`), if it can be read. */
async function xzUncompressedSize(path: string, options: FileOptions): Promise<number | undefined> {
  try {
    const { stdout } = await run(['xz', '--robot', '--list', path], { timeoutMs: 60_000, ...pipelineOptions(options) });
    const totals = stdout.split('\n').find((l) => l.startsWith('totals\t'))?.split('\t');
    const size = Number(totals?.[4]);
    return Number.isSafeInteger(size) && size > 0 ? size : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Decompresses `from` into `dir` (a private scratch directory) and returns the output path, its sha256 and the
 * sha256 of the compressed input. gzip is done in-process in one pass; xz through the `xz` program, fed a
 * symlink so its output lands in `dir`, with progress read from the output's growing size.
 */
export async function decompress(
  from: string,
  compression: Compression,
  dir: string,
  options: FileOptions = {},
): Promise<{ path: string; sha256: string; sourceSha256: string }> {
  const out = join(dir, 'decompressed');
  const limit = await imageSizeLimit(dir);
  if (compression === 'gzip') {
    const sourceHash = createHash('sha256');
    const hash = createHash('sha256');
    const total = await sizeOf(from);
    const onBytes = options.onProgress === undefined ? undefined : (done: number) => options.onProgress!(done, total);
    await pipeline(createReadStream(from), tap(sourceHash, onBytes), createGunzip(), capped(limit), tap(hash), createWriteStream(out, { flags: 'wx', mode: 0o600 }), pipelineOptions(options));
    return { path: out, sha256: hash.digest('hex'), sourceSha256: sourceHash.digest('hex') };
  }
  const sourceSha256 = await sha256File(from, pipelineOptions(options));
  const total = await xzUncompressedSize(from, options);
  if (total !== undefined && total > limit.bytes) throw tooLarge(limit, total);
  const link = `${out}.xz`;
  await symlink(from, link);
  // The index may lie: the output is watched too, and xz stopped once it passes the limit.
  const stop = new AbortController();
  const cancel = () => stop.abort();
  options.signal?.addEventListener('abort', cancel, { once: true });
  let overflow = false;
  const poll = setInterval(() => {
    void sizeOf(out).then((size) => {
      if (size === undefined) return;
      if (size > limit.bytes) {
        overflow = true;
        stop.abort();
      }
      options.onProgress?.(size, total);
    });
  }, XZ_POLL_INTERVAL_MS);
  try {
    // -f: follow the symlink; -k: leave it (and so the user's file) alone; output is `link` without ".xz".
    await run(['xz', '-d', '-k', '-f', '-q', link], { timeoutMs: XZ_TIMEOUT_MS, signal: stop.signal });
  } catch (e) {
    throw overflow ? tooLarge(limit) : e;
  } finally {
    clearInterval(poll);
    options.signal?.removeEventListener('abort', cancel);
    await rm(link, { force: true });
  }
  const size = await sizeOf(out);
  if (size !== undefined) options.onProgress?.(size, total ?? size);
  return { path: out, sha256: await sha256File(out, pipelineOptions(options)), sourceSha256 };
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
