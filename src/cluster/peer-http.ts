/**
 * The hosts' own HTTPS API (the "cluster API"): each daemon of a cluster serves it on its address, with its host
 * certificate from the cluster CA. Joining needs no client certificate (the token's secret is the proof); every
 * other route needs one the cluster CA signed. Errors travel as `{code, message, hint}` and become the same
 * VirtnodeError on the caller's side.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Server, createServer, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { connect } from 'node:tls';
import { type ErrorCode, VirtnodeError, toVirtnodeError } from '../lib/errors.ts';
import { type PeerFile, sendFile } from './peer-files.ts';

export type { PeerFile } from './peer-files.ts';

export interface PeerCaller {
  /** The CN of a client certificate the cluster CA signed; undefined for an anonymous caller. */
  host?: string;
}

export interface PeerRoute {
  /** Callers without a cluster certificate may call it (joining). */
  anonymous?: boolean;
  handle(body: unknown, caller: PeerCaller): Promise<unknown>;
}

/**
 * A GET route under a prefix for a file's bytes, named by one path segment (`PREFIX<id>`). The route turns the id
 * into a file it serves (never a path from the request); the bytes go with HTTP Range support. Always needs a
 * client certificate of the cluster CA.
 */
export interface PeerFileRoute {
  resolve(id: string, caller: PeerCaller): Promise<PeerFile>;
}

const MAX_BODY = 1024 * 1024;

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY) {
        reject(new VirtnodeError('INVALID', 'request body too large'));
        req.destroy();
      } else chunks.push(d);
    });
    req.on('end', () => {
      try {
        resolve(chunks.length === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new VirtnodeError('INVALID', 'request body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

const STATUS: Partial<Record<ErrorCode, number>> = { INVALID: 400, UNAUTHORIZED: 401, PERMISSION: 403, NOT_FOUND: 404, CONFLICT: 409, INVALID_STATE: 409, BUSY: 503, TIMEOUT: 503 };

export function startPeerServer(options: {
  host: string;
  port: number;
  tls: { ca: string; cert: string; key: string };
  routes: Record<string, PeerRoute>;
  files?: Record<string, PeerFileRoute>;
  /** Why a client certificate (by serial number, hex) is refused although the CA signed it (revoked), if it is. */
  refused?: (serial: string) => string | undefined;
}): Promise<Server> {
  const ca = readFileSync(options.tls.ca, 'utf8');
  const server = createServer(
    // The chain includes the CA, so a joining host can check it against the fingerprint its token pins.
    { cert: readFileSync(options.tls.cert, 'utf8') + ca, key: readFileSync(options.tls.key), ca, requestCert: true, rejectUnauthorized: false },
    (req: IncomingMessage, res: ServerResponse) => {
      void (async () => {
        const send = (status: number, value: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(value));
        };
        try {
          const path = (req.url ?? '/').split('?')[0]!;
          const socket = req.socket as TLSSocket;
          const caller: PeerCaller = {};
          if (socket.authorized) {
            const cert = socket.getPeerCertificate();
            const why = options.refused?.(cert.serialNumber);
            if (why !== undefined) throw new VirtnodeError('UNAUTHORIZED', `the client certificate (serial ${cert.serialNumber}) is refused: ${why}`);
            const cn = cert.subject?.CN;
            if (typeof cn === 'string') caller.host = cn;
          }
          const needCert = () => new VirtnodeError('UNAUTHORIZED', 'this cluster API route needs a client certificate of the cluster CA');
          if (req.method === 'GET' || req.method === 'HEAD') {
            const prefix = Object.keys(options.files ?? {}).find((p) => path.startsWith(p));
            const id = prefix === undefined ? undefined : path.slice(prefix.length);
            if (prefix === undefined || id === undefined || !/^[A-Za-z0-9_-]{1,128}$/.test(id)) throw new VirtnodeError('NOT_FOUND', `no cluster API route ${req.method} ${path}`);
            if (caller.host === undefined) throw needCert();
            await sendFile(req, res, await options.files![prefix]!.resolve(id, caller));
            return;
          }
          const route = req.method === 'POST' ? options.routes[path] : undefined;
          if (route === undefined) throw new VirtnodeError('NOT_FOUND', `no cluster API route ${req.method} ${path}`);
          if (route.anonymous !== true && caller.host === undefined) throw needCert();
          send(200, await route.handle(await readBody(req), caller));
        } catch (e) {
          const err = toVirtnodeError(e);
          if (res.headersSent) {
            res.destroy(err);
            return;
          }
          send(STATUS[err.code] ?? 500, { code: err.code, message: err.message, ...(err.hint === undefined ? {} : { hint: err.hint }), ...(err.field === undefined ? {} : { field: err.field }) });
        }
      })();
    },
  );
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * Connects to a host's cluster API without trusting anything yet, and returns the CA certificate it presents if
 * (and only if) its SHA-256 fingerprint is `pinned` and it issued the host's certificate. Nothing is sent.
 */
export function fetchPinnedCa(apiUrl: string, pinned: string, timeoutMs = 10_000): Promise<string> {
  const url = new URL(apiUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port || 443), rejectUnauthorized: false, timeout: timeoutMs });
    const fail = (e: VirtnodeError) => {
      socket.destroy();
      reject(e);
    };
    socket.on('timeout', () => fail(new VirtnodeError('TIMEOUT', `the cluster host at ${apiUrl} did not answer in ${timeoutMs / 1000} s`)));
    socket.on('error', (e) => fail(new VirtnodeError('TIMEOUT', `cannot reach the cluster host at ${apiUrl}: ${e.message}`, { hint: 'check the address in the token and that its daemon runs' })));
    socket.on('secureConnect', () => {
      const leaf = socket.getPeerCertificate(true);
      const chain: X509Certificate[] = [];
      let c: typeof leaf | undefined = leaf;
      const seen = new Set<string>();
      while (c !== undefined && c.raw !== undefined && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        chain.push(new X509Certificate(c.raw));
        c = c.issuerCertificate;
      }
      const ca = chain.find((x) => x.fingerprint256 === pinned);
      if (ca === undefined || chain[0] === undefined || !chain[0].checkIssued(ca) || !chain[0].verify(ca.publicKey)) {
        fail(new VirtnodeError('UNAUTHORIZED', `the host at ${apiUrl} does not present the cluster CA the token pins (${pinned.slice(0, 23)}...)`, { hint: 'the token was not made by this cluster, or something answers in its place' }));
        return;
      }
      socket.end();
      resolve(ca.toString());
    });
  });
}

/** POSTs JSON to a host's cluster API, trusting only the cluster CA; the answer's error becomes a VirtnodeError. */
export function peerCall<T>(apiUrl: string, path: string, body: unknown, tls: { ca: string; cert?: string; key?: string }, timeoutMs = 30_000): Promise<T> {
  const url = new URL(path, apiUrl);
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', ca: tls.ca, ...(tls.cert === undefined ? {} : { cert: tls.cert }), ...(tls.key === undefined ? {} : { key: tls.key }), timeout: timeoutMs, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          let value: unknown;
          try {
            value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            reject(new VirtnodeError('INTERNAL', `the cluster host at ${apiUrl} answered ${res.statusCode} without JSON`));
            return;
          }
          if (res.statusCode === 200) resolve(value as T);
          else {
            const e = value as { code?: ErrorCode; message?: string; hint?: string; field?: string };
            reject(new VirtnodeError(e.code ?? 'INTERNAL', e.message ?? `the cluster host at ${apiUrl} answered ${res.statusCode}`, { ...(e.hint === undefined ? {} : { hint: e.hint }), ...(e.field === undefined ? {} : { field: e.field }) }));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs / 1000} s`)));
    req.on('error', (e) => reject(new VirtnodeError('TIMEOUT', `cannot reach the cluster host at ${apiUrl}: ${e.message}`)));
    req.end(payload);
  });
}
