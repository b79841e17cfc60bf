/**
 * A small HTTP client for the virtnode API: over the UNIX socket (no token) or HTTPS with a bearer token.
 * Uses node:http/https only, so the CLI stays quick to start. API errors come back as the VirtnodeError the
 * daemon raised (same code, message and hint), so the CLI prints and exits exactly as it would locally.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { VirtnodeError, type ErrorCode } from '../lib/errors.ts';

export type Endpoint = { kind: 'unix'; socket: string } | { kind: 'https'; url: URL; token: string; ca?: string };

export interface ApiResponse<T> {
  status: number;
  body: T;
}

const REQUEST_TIMEOUT_MS = 10 * 60_000;

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
    let opts: RequestOptions;
    let send: typeof httpRequest;
    if (this.endpoint.kind === 'unix') {
      opts = { socketPath: this.endpoint.socket, path, method, headers };
      send = httpRequest;
    } else {
      const base = this.endpoint.url;
      headers['authorization'] = `Bearer ${this.endpoint.token}`;
      opts = { host: base.hostname.replace(/^\[|\]$/g, ''), port: base.port || 443, path: `${base.pathname.replace(/\/$/, '')}${path}`, method, headers, ...(this.endpoint.ca === undefined ? {} : { ca: this.endpoint.ca }) } as RequestOptions;
      send = httpsRequest as unknown as typeof httpRequest;
    }
    const response = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(opts, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS, () => req.destroy(new VirtnodeError('TIMEOUT', `the daemon did not answer ${method} ${path} in time`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof VirtnodeError) return reject(e);
        // Refused before the request was sent: nothing happened, so the caller may do the work itself.
        const unreachable = e.syscall === 'connect' && ['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTSOCK'].includes(e.code ?? '');
        reject(new (unreachable ? DaemonUnreachable : VirtnodeError)('COMMAND_FAILED', `cannot reach the virtnode daemon (${this.describe()}): ${e.message}`, { cause: e }));
      });
      req.end(payload);
    });
    let parsed: unknown;
    try {
      parsed = response.text === '' ? undefined : JSON.parse(response.text);
    } catch {
      parsed = response.text;
    }
    if (response.status >= 400) {
      const error = (parsed as { error?: { code?: string; message?: string; hint?: string; field?: string } } | undefined)?.error;
      throw new VirtnodeError((error?.code ?? 'INTERNAL') as ErrorCode, error?.message ?? `the daemon answered ${response.status}`, {
        ...(error?.hint === undefined ? {} : { hint: error.hint }),
        ...(error?.field === undefined ? {} : { field: error.field }),
      });
    }
    return { status: response.status, body: parsed as T };
  }

  describe(): string {
    return this.endpoint.kind === 'unix' ? this.endpoint.socket : this.endpoint.url.toString();
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
