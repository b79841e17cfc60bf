import type { FastifyInstance } from 'fastify';
import { TicketQuery, WebSocketTicket, withErrors } from '../../api/schemas.ts';
import { EVENTS_SCOPE } from '../consoles/tickets.ts';
import { TOKEN_ENDED_CLOSE_CODE } from '../open-streams.ts';
import type { DaemonCore } from '../core.ts';
import { authorizeWebSocket, TICKET_AUTH } from '../ws-auth.ts';

/** Events a client has not taken yet; past this it is disconnected (it can reconnect and get a fresh hello). */
export const MAX_EVENTS_BACKLOG_BYTES = Number(process.env['VIRTNODE_EVENTS_BACKLOG_BYTES'] ?? 4 * 1024 * 1024);

export const EVENTS_URL = '/events';
export const EVENT_TICKETS_URL = '/events/tickets';

/**
 * GET /events (WebSocket): one JSON message per event, `{type: "instance", name, state, previous, reason, at}`
 * or `{type: "operation", operation, at}`. The first message is `{type: "hello", instances: [...]}` with every
 * instance's current state, so a client needs no separate list call to start from. Open to the UNIX socket, a
 * bearer token, or (browsers) a ticket from POST /events/tickets.
 */
export async function eventRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  app.post(
    EVENT_TICKETS_URL,
    { config: { reads: true }, schema: { tags: ['events'], summary: 'a single-use ticket (valid 30 s) for the events WebSocket, for clients that cannot send the bearer token on it (browsers)', response: withErrors({ 201: WebSocketTicket }) } },
    async (request, reply) => {
      const issued = core.tickets.issue(EVENTS_SCOPE, request.authenticatedAs);
      return reply.code(201).send({ ...issued, url: `${EVENTS_URL}?ticket=${encodeURIComponent(issued.ticket)}` });
    },
  );

  app.get<{ Querystring: { ticket?: string } }>(
    EVENTS_URL,
    {
      websocket: true,
      config: TICKET_AUTH,
      preValidation: async (request) => authorizeWebSocket(request, core.tickets, EVENTS_SCOPE, 'the events stream', EVENT_TICKETS_URL),
      schema: {
        tags: ['events'],
        summary: 'WebSocket: instance state changes and operation progress as JSON messages (bearer token, UNIX socket or ?ticket=)',
        querystring: TicketQuery,
      },
    },
    (socket, request) => {
      const instances = core.instances.repo.list().map((i) => ({ name: i.name, state: i.state, ...(i.stateReason === undefined ? {} : { reason: i.stateReason }) }));
      socket.send(JSON.stringify({ type: 'hello', instances, at: new Date().toISOString() }));
      const unsubscribe = core.events.subscribe((event) => {
        if (socket.readyState !== socket.OPEN) return;
        // Events are small; a client this far behind is not reading, and is dropped rather than buffered without end.
        if (socket.bufferedAmount > MAX_EVENTS_BACKLOG_BYTES) {
          socket.close(1008, 'the client does not keep up with the events');
          return;
        }
        socket.send(JSON.stringify(event));
      });
      const untrack = core.streams.add(request.authenticatedAs, () => socket.close(TOKEN_ENDED_CLOSE_CODE, 'the token was revoked or expired'));
      socket.on('close', () => {
        unsubscribe();
        untrack();
      });
      socket.on('error', (e: Error) => request.log.info({ err: e }, 'events client went away'));
      socket.on('message', () => {}); // clients have nothing to say; messages are ignored
    },
  );
}
