import type { FastifyRequest } from 'fastify';
import { VirtnodeError } from '../lib/errors.ts';
import type { ConsoleTickets } from './consoles/tickets.ts';
import { fromBrowser } from './origin.ts';

/**
 * Route config of a WebSocket that a browser opens: the token hook lets it through without a bearer token (a
 * browser cannot put an Authorization header on a WebSocket), and the route calls `authorizeWebSocket` itself.
 */
export const TICKET_AUTH = { public: true } as const;

/**
 * A WebSocket is allowed to whoever may use the API (the UNIX socket, or a valid bearer token, as the CLI sends
 * it) and otherwise to the holder of a single-use ticket for this scope (`?ticket=`), spent here, before the
 * upgrade: a refused client sees a failed handshake and nothing is opened.
 */
export function authorizeWebSocket(request: FastifyRequest, tickets: ConsoleTickets, scope: string, what: string, ticketRoute: string): void {
  // A browser on the (forwarded) UNIX socket is not trusted as the socket's owner: it spends a ticket like any page.
  const trusted = request.authenticatedAs !== undefined && !(request.authenticatedAs === 'socket' && fromBrowser(request.headers));
  if (trusted) return;
  const ticket = (request.query as { ticket?: unknown } | undefined)?.ticket;
  if (typeof ticket === 'string' && ticket !== '') {
    const spent = tickets.spend(ticket, scope);
    if (spent !== undefined) {
      request.authenticatedAs = spent.owner; // the stream acts for whoever asked for the ticket
      return;
    }
    throw new VirtnodeError('PERMISSION', `${what}: the ticket is used, expired or for something else`, { hint: `ask for a new one: POST ${ticketRoute}` });
  }
  const header = request.headers.authorization;
  throw new VirtnodeError('UNAUTHORIZED', header === undefined ? `${what} needs a bearer token or a ticket` : 'the bearer token is not valid (unknown, revoked or expired)', {
    hint: `send Authorization: Bearer TOKEN, or (from a browser) ask for a ticket with POST ${ticketRoute} and add ?ticket=`,
  });
}
