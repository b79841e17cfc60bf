import { VirtnodeError, invalid } from '../../lib/errors.ts';

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
export async function fetchChecksum(checksumsUrl: string, fileName: string, options: { signal?: AbortSignal } = {}): Promise<string> {
  let response: Response;
  try {
    response = await fetch(checksumsUrl, { headers: { 'accept-encoding': 'identity' }, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  } catch (e) {
    if (options.signal?.aborted === true) throw new VirtnodeError('TIMEOUT', `fetching ${checksumsUrl} was interrupted`, { cause: e });
    throw requestError(checksumsUrl, e);
  }
  if (!response.ok) throw statusError(checksumsUrl, response);
  const body = Buffer.from(await response.arrayBuffer());
  if (body.length > CHECKSUMS_LIMIT_BYTES) throw invalid('--checksums', `${checksumsUrl} is too large for a SHA256SUMS file`);
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
