import type { IncomingHttpHeaders } from 'node:http';
import { VirtnodeError } from '../lib/errors.ts';

/** Names under which a forwarded UNIX socket is reached (`ssh -L 8080:/run/virtnode/virtnode.sock`). */
const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

/** `name` of `name:port` (an IPv6 literal keeps its brackets). */
function hostName(host: string): string {
  return host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : (host.split(':')[0] ?? '');
}

/** `host:port` of an Origin header, or undefined when it is not a URL (`null` from a sandboxed page). */
function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

/**
 * Refuses what a web page of another site can make a browser send: a request whose Origin is not the daemon's
 * own (a page elsewhere POSTing start/stop, or opening a console WebSocket, which no CORS rule guards), and, on
 * the UNIX socket, a Host that is not a loopback name (a DNS name rebound to 127.0.0.1 makes a foreign page
 * "same origin"). Clients that are not browsers send no Origin and pass.
 */
export function refuseForeignBrowser(headers: IncomingHttpHeaders, listener: 'socket' | 'tcp'): void {
  const host = headers.host ?? '';
  if (listener === 'socket' && host !== '' && !LOOPBACK_NAMES.has(hostName(host).toLowerCase())) {
    throw new VirtnodeError('PERMISSION', `Host "${host.slice(0, 100)}" is not this host: the UNIX socket answers only to localhost`, {
      hint: 'forward the socket to a local port (ssh -L 8080:/run/virtnode/virtnode.sock HOST) and open http://localhost:8080/ui/',
    });
  }
  const origin = headers.origin;
  if (origin === undefined) return;
  if (originHost(origin) !== host) {
    throw new VirtnodeError('PERMISSION', `a request from the web page at ${origin.slice(0, 100)} is refused: only virtnode's own web UI may call its API from a browser`, {
      hint: 'open the web UI from the daemon itself (/ui/)',
    });
  }
}

/** A browser's request (every browser sends Origin on a WebSocket handshake and on a cross-site or non-GET fetch). */
export function fromBrowser(headers: IncomingHttpHeaders): boolean {
  return headers.origin !== undefined;
}
