import { VirtnodeError, invalid } from '../../lib/errors.ts';
import type { AddressGuard } from './address-guard.ts';

/** Checks a URL given on the command line: http or https only. */
export function parseHttpUrl(field: string, text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(field, `"${text}" is not a URL`, 'give an http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalid(field, `"${text}" is not an http or https URL`, 'to add a local file use `virtnode image import FILE`');
  }
  return url;
}

/** The last path segment of a URL, decoded (the name SHA256SUMS files list). */
export function urlFileName(url: URL): string {
  const segment = url.pathname.split('/').filter((s) => s !== '').pop() ?? '';
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** A one-line error for a failed request: the URL and why (status, refused, unknown host...). */
export function requestError(url: string, e: unknown): VirtnodeError {
  if (e instanceof VirtnodeError) return e;
  const cause = (e as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const code = cause?.code;
  const reasons: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'unknown host',
    EAI_AGAIN: 'host name lookup failed',
    ECONNRESET: 'connection reset',
    ETIMEDOUT: 'connection timed out',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    UND_ERR_SOCKET: 'connection closed by the server',
  };
  const reason = (code === undefined ? undefined : reasons[code]) ?? cause?.message ?? (e instanceof Error ? e.message : String(e));
  return new VirtnodeError('COMMAND_FAILED', `cannot download ${url}: ${reason}`, { cause: e });
}

/** An error for an HTTP status other than the one expected. */
export function statusError(url: string, response: Response): VirtnodeError {
  const text = `${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
  if (response.status === 404 || response.status === 410) {
    return new VirtnodeError('NOT_FOUND', `cannot download ${url}: ${text}`, { hint: 'check the URL' });
  }
  if (response.status === 401 || response.status === 403) {
    return new VirtnodeError('PERMISSION', `cannot download ${url}: ${text}`);
  }
  return new VirtnodeError('COMMAND_FAILED', `cannot download ${url}: ${text}`);
}

const CHECKSUMS_LIMIT_BYTES = 4 * 1024 * 1024;

/** Parses SHA256SUMS (GNU `HEX  name` / `HEX *name`, or BSD `SHA256 (name) = HEX`) into name → hash. */
export function parseSha256Sums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const gnu = /^([0-9a-fA-F]{64})\s+\*?(.+)$/.exec(line);
    const bsd = /^SHA256\s*\((.+)\)\s*=\s*([0-9a-fA-F]{64})$/.exec(line);
    if (gnu !== null) sums.set(gnu[2]!, gnu[1]!.toLowerCase());
    else if (bsd !== null) sums.set(bsd[1]!, bsd[2]!.toLowerCase());
  }
  return sums;
}

/** Fetches a SHA256SUMS file and returns the hash listed for `fileName`. */
export async function fetchChecksum(checksumsUrl: string, fileName: string, options: { signal?: AbortSignal; guard?: AddressGuard } = {}): Promise<string> {
  let response: Response;
  try {
    response = await guardedFetch(checksumsUrl, { headers: { 'accept-encoding': 'identity' }, ...(options.signal === undefined ? {} : { signal: options.signal }) }, options.guard);
  } catch (e) {
    if (options.signal?.aborted === true) throw new VirtnodeError('TIMEOUT', `fetching ${checksumsUrl} was interrupted`, { cause: e });
    throw requestError(checksumsUrl, e);
  }
  if (!response.ok) throw statusError(checksumsUrl, response);
  const body = await readCapped(response, CHECKSUMS_LIMIT_BYTES, () => invalid('--checksums', `${checksumsUrl} is too large for a SHA256SUMS file`));
  const sums = parseSha256Sums(body.toString('utf8'));
  for (const [name, hash] of sums) {
    if (name === fileName || name.split('/').pop() === fileName) return hash;
  }
  const listed = [...sums.keys()].slice(0, 5).join(', ');
  throw invalid(
    '--checksums',
    `${checksumsUrl} lists no sha256 for "${fileName}"`,
    sums.size === 0 ? 'it holds no sha256 lines; give the hash with --sha256' : `it lists: ${listed}${sums.size > 5 ? ', ...' : ''}`,
  );
}

const MAX_REDIRECTS = 5;

/**
 * fetch() following redirects itself when there is a guard, so each hop's host is checked before the request
 * goes there (fetch's own `redirect: 'follow'` would go first and tell after).
 */
export async function guardedFetch(url: string, init: RequestInit, guard: AddressGuard | undefined): Promise<Response> {
  if (guard === undefined) return fetch(url, { ...init, redirect: 'follow' });
  let current = new URL(url);
  for (let hop = 0; ; hop++) {
    await guard(current);
    const response = await fetch(current, { ...init, redirect: 'manual' });
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || location === null) return response;
    await response.body?.cancel();
    if (hop === MAX_REDIRECTS) throw new VirtnodeError('INVALID', `${url}: more than ${MAX_REDIRECTS} redirects`, { field: 'url' });
    current = new URL(location, current);
    if (current.protocol !== 'http:' && current.protocol !== 'https:') throw new VirtnodeError('INVALID', `${url} redirects to ${current.protocol} URL`, { field: 'url' });
  }
}

/** A response body read only up to `limit` bytes: a server sending without end is cut, not buffered. */
async function readCapped(response: Response, limit: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.length;
    if (size > limit) {
      await response.body?.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
