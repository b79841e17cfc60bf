/**
 * A small HTTP client for the virtnode API: over the UNIX socket (no token) or HTTPS with a bearer token.
 * Uses node:http/https only, so the CLI stays quick to start; node:https (and with it TLS) loads only for --remote. API errors come back as the VirtnodeError the
 * daemon raised (same code, message and hint), so the CLI prints and exits exactly as it would locally.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { VirtnodeError, type ErrorCode } from '../lib/errors.ts';
import type { Transport } from './contract-client.ts';

export type Endpoint = { kind: 'unix'; socket: string } | { kind: 'https'; url: URL; token: string; ca?: string };

export interface ApiResponse<T> {
  status: number;
  body: T;
}

const REQUEST_TIMEOUT_MS = 10 * 60_000;
const RESEND_PAUSE_MS = 250;

export class ApiClient {
  readonly endpoint: Endpoint;

  constructor(endpoint: Endpoint) {
    this.endpoint = endpoint;
  }

  static https(url: string, token: string | undefined, caFile?: string): ApiClient {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new VirtnodeError('INVALID', `--remote: "${url}" is not a URL`, { field: '--remote', hint: 'e.g. https://host:8443' });
    }
    if (parsed.protocol !== 'https:') throw new VirtnodeError('INVALID', `--remote: ${url} is not https://`, { field: '--remote', hint: 'the daemon serves TCP only over TLS' });
    if (token === undefined || token === '') {
      throw new VirtnodeError('UNAUTHORIZED', '--remote needs a token in VIRTNODE_TOKEN', { hint: 'make one on that host with `virtnode token create NAME`' });
    }
    return new ApiClient({ kind: 'https', url: parsed, token, ...(caFile === undefined ? {} : { ca: readFileSync(caFile, 'utf8') }) });
  }

  async request<T>(method: string, path: string, body?: unknown, options: { timeoutMs?: number } = {}): Promise<ApiResponse<T>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { accept: 'application/json' };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    // Sent again with this key, a change is done once: the daemon answers a repeat with its first answer.
    if (method !== 'GET') headers['idempotency-key'] = crypto.randomUUID();
    const { opts, send } = this.requestOptions(method, path, headers);
    const response = await sentAgainIfUnanswered(() => this.exchange(send, opts, method, path, payload, options.timeoutMs));
    let parsed: unknown;
    try {
      parsed = response.text === '' ? undefined : JSON.parse(response.text);
    } catch {
      parsed = response.text;
    }
    if (response.status >= 400) throw errorFromBody(response.status, response.text);
    return { status: response.status, body: parsed as T };
  }

  private exchange(send: typeof httpRequest, opts: RequestOptions, method: string, path: string, payload: Buffer | undefined, timeoutMs: number | undefined): Promise<{ status: number; text: string }> {
    return new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(opts, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs ?? REQUEST_TIMEOUT_MS, () => req.destroy(new VirtnodeError('TIMEOUT', `the daemon did not answer ${method} ${path} in time`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof VirtnodeError) return reject(e);
        reject(this.connectError(e));
      });
      req.end(payload);
    });
  }

  /**
   * A GET whose body is passed on as it arrives (a log, possibly followed without end): resolves when the daemon
   * ends it, or when `signal` aborts it. An error status comes back as the daemon's VirtnodeError.
   */
  async stream(path: string, onData: (chunk: Buffer) => void | Promise<void>, signal?: AbortSignal): Promise<void> {
    const { opts, send } = this.requestOptions('GET', path, { accept: '*/*' });
    await new Promise<void>((resolve, reject) => {
      const req = send({ ...opts, ...(signal === undefined ? {} : { signal }) }, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (status >= 400) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(errorFromBody(status, Buffer.concat(chunks).toString('utf8'))));
          return;
        }
        res.on('data', (chunk: Buffer) => {
          const room = onData(chunk);
          if (room === undefined) return;
          // A slow reader: stop reading from the socket until it has room, so TCP pushes back on the daemon.
          res.pause();
          room.then(() => res.resume(), () => res.destroy());
        });
        res.on('end', resolve);
        res.on('error', (e) => (signal?.aborted ? resolve() : reject(e)));
        res.on('close', () => resolve());
      });
      req.on('error', (e: NodeJS.ErrnoException) => (signal?.aborted ? resolve() : reject(e instanceof VirtnodeError ? e : this.connectError(e))));
      req.end();
    });
  }

  private requestOptions(method: string, path: string, headers: Record<string, string | number>): { opts: RequestOptions; send: typeof httpRequest } {
    if (this.endpoint.kind === 'unix') return { opts: { socketPath: this.endpoint.socket, path, method, headers }, send: httpRequest };
    const base = this.endpoint.url;
    headers['authorization'] = `Bearer ${this.endpoint.token}`;
    return {
      opts: { host: base.hostname.replace(/^\[|\]$/g, ''), port: base.port || 443, path: `${base.pathname.replace(/\/$/, '')}${path}`, method, headers, ...(this.endpoint.ca === undefined ? {} : { ca: this.endpoint.ca }) } as RequestOptions,
      send: process.getBuiltinModule('node:https').request as unknown as typeof httpRequest,
    };
  }

  /** Refused before the request was sent: nothing happened, so the caller may do the work itself. */
  private connectError(e: NodeJS.ErrnoException): VirtnodeError {
    const unreachable = e.syscall === 'connect' && ['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTSOCK'].includes(e.code ?? '');
    return new (unreachable ? DaemonUnreachable : VirtnodeError)('COMMAND_FAILED', `cannot reach the virtnode daemon (${this.describe()}): ${e.message}`, { cause: e });
  }

  /** This client as the contract client's transport. */
  transport(): Transport {
    return { request: async (method, path, body) => (await this.request(method, path, body)).body };
  }

  describe(): string {
    return this.endpoint.kind === 'unix' ? this.endpoint.socket : this.endpoint.url.toString();
  }
}

/** The daemon's error answer (the API's error shape) as the VirtnodeError it raised. */
export function errorFromBody(status: number, text: string): VirtnodeError {
  let error: { code?: string; message?: string; hint?: string; field?: string } | undefined;
  try {
    error = (JSON.parse(text) as { error?: typeof error } | undefined)?.error;
  } catch {
    /* not the error shape */
  }
  return new VirtnodeError((error?.code ?? 'INTERNAL') as ErrorCode, error?.message ?? `the daemon answered ${status}`, {
    ...(error?.hint === undefined ? {} : { hint: error.hint }),
    ...(error?.field === undefined ? {} : { field: error.field }),
  });
}

/**
 * Sends once more a request whose connection broke after it was sent (ECONNRESET, EPIPE: a kept-alive connection
 * the daemon closed just then, a network that dropped it): a change carries its idempotency key, so the daemon
 * does it once and answers the repeat with its first answer.
 */
async function sentAgainIfUnanswered<T>(exchange: () => Promise<T>): Promise<T> {
  try {
    return await exchange();
  } catch (e) {
    const code = (e instanceof VirtnodeError ? (e.cause as NodeJS.ErrnoException | undefined) : undefined)?.code;
    if (e instanceof DaemonUnreachable || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw e;
    await new Promise((resolve) => setTimeout(resolve, RESEND_PAUSE_MS));
    try {
      return await exchange();
    } catch (again) {
      // A daemon gone since may have done part of the work: never let the caller take it for one that was never there.
      throw again instanceof DaemonUnreachable ? e : again;
    }
  }
}

/** The daemon was not there to take the request (nothing was done). */
export class DaemonUnreachable extends VirtnodeError {}

/** Is a daemon answering on this UNIX socket? (A socket file alone may be left over from a crash.) */
export async function daemonAnswers(socket: string, timeoutMs = 1_000): Promise<boolean> {
  try {
    const client = new ApiClient({ kind: 'unix', socket });
    await client.request('GET', '/host', undefined, { timeoutMs });
    return true;
  } catch {
    return false;
  }
}
