/**
 * Files over the cluster API: the serving side of a GET with HTTP Range (so an interrupted transfer resumes), and
 * the client, which returns a fetch() `Response` so the image store's resumable download reads it like any other.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'node:https';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { type ErrorCode, VirtnodeError } from '../lib/errors.ts';

/** A file a route serves; `etag` is strong and changes whenever its bytes may (e.g. the content's digest). */
export interface PeerFile {
  path: string;
  etag: string;
}

/** The one range this server honours: `bytes=START-` or `bytes=START-END` (no lists, no suffix ranges). */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (m === null) return undefined;
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (!Number.isSafeInteger(start) || start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

export async function sendFile(req: IncomingMessage, res: ServerResponse, file: PeerFile): Promise<void> {
  const size = (await stat(file.path)).size;
  const ifRange = req.headers['if-range'];
  const range = ifRange === undefined || ifRange === file.etag ? parseRange(req.headers.range, size) : undefined;
  const common = { 'accept-ranges': 'bytes', etag: file.etag, 'content-type': 'application/octet-stream' };
  if (range === 'unsatisfiable') {
    res.writeHead(416, { ...common, 'content-range': `bytes */${size}` });
    res.end();
    return;
  }
  const { start, end } = range ?? { start: 0, end: size - 1 };
  res.writeHead(range === undefined ? 200 : 206, {
    ...common,
    'content-length': String(end - start + 1),
    ...(range === undefined ? {} : { 'content-range': `bytes ${start}-${end}/${size}` }),
  });
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  await pipeline(createReadStream(file.path, { start, end }), res);
}

export interface PeerTls {
  ca: string;
  cert: string;
  key: string;
}

/**
 * GET on a host's cluster API with this host's certificate, trusting only the cluster CA, as a fetch() Response
 * (the body streams). An error answer of the API becomes the VirtnodeError it carries.
 */
export function peerGet(url: string, init: { headers?: Record<string, string>; signal?: AbortSignal }, tls: PeerTls): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', ca: tls.ca, cert: tls.cert, key: tls.key, headers: init.headers ?? {}, ...(init.signal === undefined ? {} : { signal: init.signal }) }, (res) => {
      const status = res.statusCode ?? 500;
      if (status >= 400 && status !== 416 && (res.headers['content-type'] ?? '').startsWith('application/json')) {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', reject);
        res.on('end', () => {
          let e: { code?: ErrorCode; message?: string; hint?: string; field?: string } = {};
          try {
            e = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof e;
          } catch {
            /* no detail */
          }
          reject(new VirtnodeError(e.code ?? 'INTERNAL', e.message ?? `${url} answered ${status}`, { ...(e.hint === undefined ? {} : { hint: e.hint }), ...(e.field === undefined ? {} : { field: e.field }) }));
        });
        return;
      }
      const headers = new Headers();
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
      const body = status === 204 || status === 304 ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
      resolve(new Response(body, { status, headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The sha256 (hex) of a file's bytes, streamed. */
export async function fileSha256(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash, ...(signal === undefined ? [] : [{ signal }]));
  return hash.digest('hex');
}

/**
 * GETs `url` (a PeerFileRoute) into `dest` through `dest.part`, checks its size and sha256, and renames it into
 * place only if both match; a failure leaves neither file.
 */
export async function peerDownloadVerified(url: string, dest: string, expect: { size: number; sha256: string }, tls: PeerTls, signal?: AbortSignal): Promise<void> {
  const part = `${dest}.part`;
  try {
    const res = await peerGet(url, signal === undefined ? {} : { signal }, tls);
    if (res.status !== 200 || res.body === null) throw new VirtnodeError('COMMAND_FAILED', `${url} answered ${res.status}`);
    const hash = createHash('sha256');
    let size = 0;
    const counted = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>).on('data', (d: Buffer) => {
      size += d.length;
      hash.update(d);
    });
    await pipeline(counted, createWriteStream(part, { mode: 0o600 }), ...(signal === undefined ? [] : [{ signal }]));
    const sha256 = hash.digest('hex');
    if (size !== expect.size || sha256 !== expect.sha256) {
      throw new VirtnodeError('COMMAND_FAILED', `the copy of ${url} has ${size} bytes with sha256 ${sha256}, not ${expect.size} bytes with sha256 ${expect.sha256}`);
    }
    await rename(part, dest);
  } catch (e) {
    await rm(part, { force: true });
    throw e;
  }
}
