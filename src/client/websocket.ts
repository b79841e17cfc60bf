import WebSocket from 'ws';
import { VirtnodeError } from '../lib/errors.ts';
import { type ApiClient, DaemonUnreachable, errorFromBody } from './http.ts';

/**
 * Opens a WebSocket on the daemon the client talks to: over the UNIX socket (its file mode is the
 * authentication) or over TLS with the bearer token in the upgrade request, so no ticket is needed. A refused
 * upgrade comes back as the VirtnodeError the daemon answered with; a daemon that is not there as
 * DaemonUnreachable (nothing was done).
 */
export function openWebSocket(client: ApiClient, path: string): Promise<WebSocket> {
  const endpoint = client.endpoint;
  const ws =
    endpoint.kind === 'unix'
      ? new WebSocket(`ws+unix://${endpoint.socket}:${path}`)
      : new WebSocket(`wss://${endpoint.url.host}${endpoint.url.pathname.replace(/\/$/, '')}${path}`, {
          headers: { authorization: `Bearer ${endpoint.token}` },
          ...(endpoint.ca === undefined ? {} : { ca: endpoint.ca }),
        });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => {
        reject(errorFromBody(response.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
        ws.terminate();
      });
    });
    ws.once('error', (e: NodeJS.ErrnoException) => {
      const unreachable = e.syscall === 'connect' && ['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTSOCK'].includes(e.code ?? '');
      reject(new (unreachable ? DaemonUnreachable : VirtnodeError)('COMMAND_FAILED', `cannot reach the virtnode daemon (${client.describe()}): ${e.message}`, { cause: e }));
    });
  });
}
