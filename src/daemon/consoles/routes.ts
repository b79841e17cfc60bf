import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { VirtnodeError, invalid } from '../../lib/errors.ts';
import { validateName } from '../../lib/names.ts';
import type { ConsoleEndpoints } from '../../instances/driver.ts';
import { SCROLLBACK_BYTES, SerialHubs } from './serial-hub.ts';
import { authorizeWebSocket, TICKET_AUTH } from '../ws-auth.ts';
import { CONSOLE_KINDS, type ConsoleKind, ConsoleTickets, consoleScope } from './tickets.ts';
import { bridgeVnc } from './vnc-bridge.ts';
import { type OpenStreams, TOKEN_ENDED_CLOSE_CODE } from '../open-streams.ts';
import { noConsole } from '../../instances/driver.ts';

/** What the console routes need from the core (the daemon's DaemonCore has all of it). */
export interface ConsoleCore {
  instances: {
    get(name: string): Promise<{ name: string; state: string }>;
    list(): Promise<Array<{ name: string; state: string; stateReason?: string | undefined }>>;
    /** Where the instance's consoles are (its driver's sockets). */
    consoles(name: string): ConsoleEndpoints;
  };
  /** The daemon's tickets (shared by every listener); without them the console routes keep their own. */
  tickets?: ConsoleTickets;
  /** The daemon's open streams: a console opened with a token closes when the token ends. */
  streams?: OpenStreams;
}

export interface ConsoleRoutesOptions {
  tickets?: ConsoleTickets;
  hubs?: SerialHubs;
}

/** Output a serial viewer has not taken yet; past this the viewer is disconnected rather than buffered without end. */
const MAX_SERIAL_BACKLOG_BYTES = 8 * 1024 * 1024;
const LIVE_STATES = new Set(['running', 'paused']);

const TICKET_RESPONSE = {
  type: 'object',
  additionalProperties: false,
  properties: { ticket: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' }, url: { type: 'string' } },
  required: ['ticket', 'expiresAt', 'url'],
} as const;

export { TICKET_AUTH };

export function consoleUrl(name: string, kind: ConsoleKind, ticket: string): string {
  return `/instances/${encodeURIComponent(name)}/console/${kind}?ticket=${encodeURIComponent(ticket)}`;
}

async function liveInstance(core: ConsoleCore, name: string): Promise<string> {
  const valid = validateName('name', name);
  const instance = await core.instances.get(valid);
  if (!LIVE_STATES.has(instance.state)) {
    throw new VirtnodeError('INVALID_STATE', `instance ${valid} is ${instance.state}: its consoles exist only while it runs`, {
      hint: 'start it first',
    });
  }
  return valid;
}

function parseKind(value: unknown): ConsoleKind {
  if (typeof value !== 'string' || !CONSOLE_KINDS.includes(value as ConsoleKind)) {
    throw invalid('kind', `${JSON.stringify(value)} is not a console kind`, `use ${CONSOLE_KINDS.join(' or ')}`);
  }
  return value as ConsoleKind;
}

/**
 * POST /instances/:name/console-tickets {kind} → {ticket, expiresAt, url} (behind the API's normal auth), and the
 * WebSockets GET /instances/:name/console/serial|vnc (the UNIX socket or a bearer token, or ?ticket=… spent before the
 * upgrade). The serial one takes ?scrollback=BYTES (0: live output only, as `virtnode console` shows it).
 */
export async function consoleRoutes(app: FastifyInstance, core: ConsoleCore, options: ConsoleRoutesOptions = {}): Promise<void> {
  const tickets = options.tickets ?? new ConsoleTickets();
  const hubs = options.hubs ?? new SerialHubs();

  app.post<{ Params: { name: string }; Body: { kind: string } }>(
    '/instances/:name/console-tickets',
    {
      schema: {
        tags: ['consoles'],
        summary: 'a ticket for one console WebSocket of this instance: single use, valid 30 s (opens `url`)',
        params: { type: 'object', properties: { name: { type: 'string', maxLength: 63 } }, required: ['name'] },
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { kind: { type: 'string', enum: [...CONSOLE_KINDS] } },
          required: ['kind'],
        },
        response: { 201: TICKET_RESPONSE },
      },
    },
    async (request, reply) => {
      const kind = parseKind(request.body.kind);
      const name = await liveInstance(core, request.params.name);
      const issued = tickets.issue(consoleScope(name, kind), request.authenticatedAs);
      return reply.code(201).send({ ...issued, url: consoleUrl(name, kind, issued.ticket) });
    },
  );

  // The UNIX socket and a bearer token (the CLI) need no ticket; a browser spends one here, before the upgrade.
  const authorize = async (request: FastifyRequest<{ Params: { name: string; kind: string }; Querystring: { ticket?: string; scrollback?: number } }>) => {
    const kind = parseKind(request.params.kind);
    const name = validateName('name', request.params.name);
    if (request.readOnly) throw new VirtnodeError('PERMISSION', `console ${kind} of ${name}: a read-only token cannot type into a guest`, { hint: 'use a token made without --read-only' });
    authorizeWebSocket(request, tickets, consoleScope(name, kind), `console ${kind} of ${name}`, `/instances/${name}/console-tickets`);
    await liveInstance(core, name);
  };

  app.get<{ Params: { name: string; kind: string }; Querystring: { ticket?: string; scrollback?: number } }>(
    '/instances/:name/console/:kind',
    {
      websocket: true,
      config: TICKET_AUTH,
      preValidation: authorize,
      schema: {
        tags: ['consoles'],
        summary: 'WebSocket (binary frames): the serial console (scroll-back, then live) or VNC (RFB, for noVNC); UNIX socket, bearer token or ?ticket=',
        params: { type: 'object', properties: { name: { type: 'string', maxLength: 63 }, kind: { type: 'string', enum: [...CONSOLE_KINDS] } }, required: ['name', 'kind'] },
        querystring: {
          type: 'object',
          properties: {
            ticket: { type: 'string', maxLength: 64 },
            scrollback: { type: 'integer', minimum: 0, maximum: SCROLLBACK_BYTES, description: `serial: bytes of the console log sent first (default ${SCROLLBACK_BYTES})` },
          },
        },
      },
    },
    (socket: WebSocket, request) => {
      const name = request.params.name;
      let endpoints: ConsoleEndpoints;
      try {
        endpoints = core.instances.consoles(name);
      } catch (e) {
        socket.close(1011, (e instanceof Error ? e.message : String(e)).slice(0, 120)); // deleted since the upgrade was authorized
        return;
      }
      const untrack = core.streams?.add(request.authenticatedAs, () => socket.close(TOKEN_ENDED_CLOSE_CODE, 'the token was revoked or expired'));
      if (untrack !== undefined) socket.on('close', untrack);
      const wanted = request.params.kind === 'vnc' ? endpoints.vnc : endpoints.serial;
      if (wanted === undefined && (request.params.kind === 'vnc' || endpoints.serialCommand === undefined)) {
        socket.close(1011, noConsole(name, request.params.kind === 'vnc' ? 'graphical' : 'serial').message.slice(0, 120));
        return;
      }
      if (request.params.kind === 'vnc') {
        bridgeVnc(socket, wanted!);
        return;
      }
      // The first frame is always the scroll-back (possibly empty), so the terminal can replay it without
      // answering the queries in it (a stale `ESC [6n` would otherwise type a cursor report into the shell).
      let first = true;
      const session = hubs.join(name, { socket: wanted, ...(endpoints.serialCommand === undefined ? {} : { command: endpoints.serialCommand }), log: endpoints.serialLog }, request.query.scrollback ?? SCROLLBACK_BYTES, {
        output: (data) => {
          if (socket.readyState !== socket.OPEN || (data.length === 0 && !first)) return;
          first = false;
          if (socket.bufferedAmount > MAX_SERIAL_BACKLOG_BYTES) {
            socket.close(1008, 'the viewer does not keep up with the console output');
            return;
          }
          socket.send(data, { binary: true });
        },
        closed: (reason) => socket.close(1000, reason.slice(0, 120)),
      });
      socket.on('message', (data: Buffer) => session.input(Buffer.from(data)));
      socket.on('close', () => session.leave());
      socket.on('error', () => session.leave());
    },
  );

}
