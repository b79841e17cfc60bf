import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rm, stat, statfs, truncate, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VirtnodeError, invalid, noSpaceCause } from '../../lib/errors.ts';
import { NoSpaceError } from '../../lib/no-space.ts';
import { formatSize } from '../../lib/units.ts';
import { imageSizeLimit } from '../size-limit.ts';
import type { DownloadProgress } from './progress.ts';
import type { AddressGuard } from './address-guard.ts';
import { guardedFetch, requestError, statusError } from './http.ts';

/** Retries of an interrupted transfer within one call, each resuming where the last stopped. */
const DEFAULT_RETRIES = 3;
const RETRY_DELAY_MS = 500;
/** A transfer that receives nothing for this long is cut and retried. */
const DEFAULT_STALL_TIMEOUT_MS = 60_000;

/** What is kept beside a partial download so a later attempt can resume it safely. */
interface PartialMeta {
  url: string;
  /** Strong ETag or Last-Modified of the response the partial came from, sent back as If-Range. */
  validator: string | undefined;
  total: number | undefined;
}

export interface DownloadResult {
  sha256: string;
  bytes: number;
  /** Bytes that were already on disk from an earlier, interrupted attempt. */
  resumedFrom: number;
}

export interface DownloadOptions {
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  retries?: number;
  /** A transfer that receives nothing for this long is cut (and retried if it had made progress). */
  stallTimeoutMs?: number;
  /** Checks each host the download goes to, redirects included. */
  guard?: AddressGuard;
  /** Makes the requests instead of fetch() (e.g. over the cluster API with client certificates). */
  fetcher?: Fetcher;
  /** What the partial file is of, for resuming it (default the URL); another URL with the same identity resumes it. */
  identity?: string;
}

export type Fetcher = (url: string, init: { headers: Record<string, string>; signal: AbortSignal }) => Promise<Response>;

/** A transfer cut short after some bytes arrived: worth resuming at once. */
class CutOff extends VirtnodeError {}

export function metaPath(partial: string): string {
  return `${partial}.json`;
}

export async function discardPartial(partial: string): Promise<void> {
  await rm(partial, { force: true });
  await rm(metaPath(partial), { force: true });
}

async function readMeta(partial: string): Promise<PartialMeta | undefined> {
  try {
    return JSON.parse(await readFile(metaPath(partial), 'utf8')) as PartialMeta;
  } catch {
    return undefined;
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** If-Range needs a strong ETag; a weak one (W/"...") cannot guarantee the bytes match, so use the date. */
function validatorOf(response: Response): string | undefined {
  const etag = response.headers.get('etag');
  if (etag !== null && !etag.startsWith('W/')) return etag;
  return response.headers.get('last-modified') ?? undefined;
}

function contentRange(header: string | null): { start: number; total: number | undefined } | undefined {
  const match = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header ?? '');
  if (match === null) return undefined;
  return { start: Number(match[1]), total: match[2] === '*' ? undefined : Number(match[2]) };
}

async function hashPrefix(path: string, bytes: number, hash: ReturnType<typeof createHash>, signal: AbortSignal | undefined): Promise<void> {
  if (bytes === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: bytes - 1 })) {
    signal?.throwIfAborted();
    hash.update(chunk as Buffer);
  }
}

/**
 * Downloads `url` into `partial`, resuming what an earlier attempt left there when the server allows it
 * (Range + If-Range on the ETag or Last-Modified it sent then; a 200 answer means start again from zero).
 * Connection failures after some progress are retried at once, resuming. On abort the partial file stays.
 */
export async function download(url: string, partial: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const retries = options.retries ?? DEFAULT_RETRIES;
  for (let attempt = 0; ; attempt++) {
    try {
      return await downloadOnce(url, partial, options);
    } catch (e) {
      if (!(e instanceof CutOff) || attempt >= retries || options.signal?.aborted === true) throw e;
      await sleep(RETRY_DELAY_MS * (attempt + 1), undefined, options.signal === undefined ? {} : { signal: options.signal }).catch(() => {});
    }
  }
}

async function downloadOnce(url: string, partial: string, options: DownloadOptions): Promise<DownloadResult> {
  const meta = await readMeta(partial);
  const identity = options.identity ?? url;
  let have = await sizeOf(partial);
  const canResume = have > 0 && meta !== undefined && meta.url === identity && meta.validator !== undefined;
  if (!canResume && have > 0) {
    await discardPartial(partial);
    have = 0;
  }

  // Hash what is already there before asking for the rest: on a slow disk this can take a while, and the
  // server's connection should not sit idle meanwhile. (If the server answers 200, the hash starts afresh.)
  let prefixHash: ReturnType<typeof createHash> | undefined;
  if (canResume) {
    prefixHash = createHash('sha256');
    try {
      await hashPrefix(partial, have, prefixHash, options.signal);
    } catch (e) {
      if (options.signal?.aborted === true) throw interrupted(url, have, meta?.total);
      throw e;
    }
  }

  const stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const stall = new AbortController();
  let stallTimer: NodeJS.Timeout | undefined;
  const armStall = () => {
    clearTimeout(stallTimer);
    stallTimer = setTimeout(() => stall.abort(), stallTimeoutMs);
  };
  const signal = options.signal === undefined ? stall.signal : AbortSignal.any([options.signal, stall.signal]);
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (canResume) {
    headers['range'] = `bytes=${have}-`;
    headers['if-range'] = meta.validator!;
  }

  armStall();
  let response: Response;
  try {
    response = options.fetcher === undefined ? await guardedFetch(url, { headers, signal }, options.guard) : await options.fetcher(url, { headers, signal });
  } catch (e) {
    clearTimeout(stallTimer);
    if (options.signal?.aborted === true) throw interrupted(url, have, meta?.total);
    if (stall.signal.aborted) {
      throw new VirtnodeError('TIMEOUT', `cannot download ${url}: no answer within ${stallTimeoutMs / 1000} s`, { cause: e });
    }
    throw requestError(url, e);
  }

  let offset: number;
  let total: number | undefined;
  if (response.status === 206 && canResume) {
    const range = contentRange(response.headers.get('content-range'));
    if (range === undefined || range.start !== have) {
      // Not the range we asked for: start over rather than guess.
      await response.body?.cancel();
      clearTimeout(stallTimer);
      await discardPartial(partial);
      return downloadOnce(url, partial, options);
    }
    offset = have;
    total = range.total ?? meta.total;
  } else if (response.status === 416 && canResume) {
    await response.body?.cancel();
    clearTimeout(stallTimer);
    const range = /^bytes \*\/(\d+)$/.exec(response.headers.get('content-range') ?? '');
    if (range !== null && Number(range[1]) === have) {
      // The earlier attempt had everything; only the hash is missing.
      return { sha256: prefixHash!.digest('hex'), bytes: have, resumedFrom: have };
    }
    await discardPartial(partial);
    return downloadOnce(url, partial, options);
  } else if (response.status === 200) {
    offset = 0;
    const length = response.headers.get('content-length');
    total = length === null ? undefined : Number(length);
  } else {
    await response.body?.cancel();
    clearTimeout(stallTimer);
    throw statusError(url, response);
  }

  const contentType = response.headers.get('content-type') ?? '';
  if (/^text\/html\b/i.test(contentType)) {
    await response.body?.cancel();
    clearTimeout(stallTimer);
    throw invalid('URL', `${url} returned a web page (${contentType}), not an image`, 'check the URL: it must point at the image file itself');
  }
  if (total !== undefined) {
    const fs = await statfs(dirname(partial));
    const free = fs.bavail * fs.bsize;
    if (free < total - offset) {
      await response.body?.cancel();
      clearTimeout(stallTimer);
      throw new VirtnodeError('INVALID_STATE', `not enough space in ${dirname(partial)} to download ${url}: it needs ${formatSize(total - offset)}, ${formatSize(free)} is free`, {
        hint: 'free some space (`virtnode image rm` unused images), then pull again',
      });
    }
  }

  const resumable = response.headers.get('accept-ranges') === 'bytes' || response.status === 206;
  const next: PartialMeta = { url: identity, validator: resumable ? validatorOf(response) : undefined, total };
  await writeFile(metaPath(partial), JSON.stringify(next), { mode: 0o600 });
  if (offset === 0) await writeFile(partial, '', { mode: 0o600 });
  else await truncate(partial, offset);

  const hash = offset > 0 && prefixHash !== undefined ? prefixHash : createHash('sha256');

  const started = Date.now();
  let received = offset;
  const report = (done: boolean) => {
    if (options.onProgress === undefined) return;
    const seconds = (Date.now() - started) / 1000;
    const bytesPerSecond = seconds > 0 ? (received - offset) / seconds : 0;
    const etaSeconds = total !== undefined && bytesPerSecond > 0 ? (total - received) / bytesPerSecond : undefined;
    options.onProgress({ received, total, resumedFrom: offset, bytesPerSecond, etaSeconds, done });
  };
  report(false);

  // Counted as the bytes come: a server that declares no size, or sends more than it declared, stops here.
  const limit = await imageSizeLimit(dirname(partial));
  let overflow: VirtnodeError | undefined;
  const file = await open(partial, 'a');
  try {
    if (response.body === null) throw new VirtnodeError('COMMAND_FAILED', `cannot download ${url}: the response has no body`);
    for await (const chunk of response.body) {
      armStall();
      if (received + chunk.length > limit.bytes) {
        overflow =
          limit.kind === 'space'
            ? new NoSpaceError(`download of ${url} stopped after ${shownBytes(received, total)}, at ${limit.why}`, dirname(partial), undefined)
            : invalid('URL', `cannot download ${url}: it is larger than ${limit.why}`, 'pull a smaller image');
      } else if (total !== undefined && received + chunk.length > total) {
        overflow = new VirtnodeError('COMMAND_FAILED', `cannot download ${url}: the server sent more than the ${formatSize(total)} it declared`);
      }
      if (overflow !== undefined) {
        await response.body.cancel().catch(() => {});
        throw overflow;
      }
      await file.write(chunk);
      hash.update(chunk);
      received += chunk.length;
      report(false);
    }
    await file.datasync();
  } catch (e) {
    if (options.signal?.aborted === true) throw interrupted(url, received, total);
    if (e instanceof VirtnodeError) throw e;
    // A full disk is no cut-off: retrying at once or resuming later would only fill it again.
    if (noSpaceCause(e) !== undefined) throw new NoSpaceError(`download of ${url} stopped after ${shownBytes(received, total)}`, dirname(partial), e);
    throw cutOff(url, received, total, received > offset, e);
  } finally {
    clearTimeout(stallTimer);
    await file.close();
    if (overflow !== undefined) await discardPartial(partial); // nothing worth resuming
  }
  if (total !== undefined && received !== total) throw cutOff(url, received, total, received > offset, undefined);
  report(true);
  return { sha256: hash.digest('hex'), bytes: received, resumedFrom: offset };
}

function shownBytes(received: number, total: number | undefined): string {
  return total === undefined ? formatSize(received) : `${formatSize(received)} of ${formatSize(total)}`;
}

function interrupted(url: string, received: number, total: number | undefined): VirtnodeError {
  return new VirtnodeError('TIMEOUT', `download of ${url} was interrupted after ${shownBytes(received, total)}`, {
    hint: 'run the same command again to resume it',
  });
}

function cutOff(url: string, received: number, total: number | undefined, progressed: boolean, cause: unknown): VirtnodeError {
  const message = `download of ${url} was cut off after ${shownBytes(received, total)}`;
  const options = { hint: 'run the same command again to resume it', ...(cause === undefined ? {} : { cause }) };
  return progressed ? new CutOff('COMMAND_FAILED', message, options) : new VirtnodeError('COMMAND_FAILED', message, options);
}
