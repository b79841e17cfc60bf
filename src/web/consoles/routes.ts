import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { VirtnodeError, invalid } from '../../lib/errors.ts';
import { validateName } from '../../lib/ids.ts';
import { runtimePaths } from '../../instances/runtime.ts';
import { SerialHubs } from './serial-hub.ts';
import { CONSOLE_KINDS, type ConsoleKind, ConsoleTickets, consoleScope, EVENTS_SCOPE } from './tickets.ts';
import { bridgeVnc } from './vnc-bridge.ts';

/** What the console routes need from the core (the daemon's DaemonCore has all of it). */
export interface ConsoleCore {
  instances: {
    get(name: string): Promise<{ name: string; state: string }>;
    list(): Promise<Array<{ name: string; state: string; stateReason?: string | undefined }>>;
    paths: { instanceDir(name: string): string };
  };
  /** The daemon's event bus; without it there is no ticketed events stream. */
  events?: { subscribe(listener: (event: unknown) => void): () => void };
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without the bearer token even on TCP (the daemon's auth hook skips it); see TICKET_AUTH. */
    public?: boolean;
  }
}

export interface ConsoleRoutesOptions {
  tickets?: ConsoleTickets;
  hubs?: SerialHubs;
}

/** Output a serial viewer has not taken yet; past this it is dropped rather than buffered without end. */
const MAX_SERIAL_BACKLOG_BYTES = 8 * 1024 * 1024;
const LIVE_STATES = new Set(['running', 'paused']);

const TICKET_RESPONSE = {
  type: 'object',
  additionalProperties: false,
  properties: { ticket: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' }, url: { type: 'string' } },
  required: ['ticket', 'expiresAt', 'url'],
} as const;

/** Route config of the WebSockets a ticket authorizes: no bearer token (a browser cannot send one on a WebSocket). */
export const TICKET_AUTH = { public: true } as const;
export const EVENTS_URL = '/ui/events';

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
 * WebSockets GET /instances/:name/console/serial|vnc?ticket=… that spend the ticket before the upgrade.
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
      const issued = tickets.issue(consoleScope(name, kind));
      return reply.code(201).send({ ...issued, url: consoleUrl(name, kind, issued.ticket) });
    },
  );

  const spendTicket = async (request: FastifyRequest<{ Params: { name: string; kind: string }; Querystring: { ticket?: string } }>) => {
    const kind = parseKind(request.params.kind);
    const name = validateName('name', request.params.name);
    if (!tickets.redeem(request.query.ticket ?? '', consoleScope(name, kind))) {
      // Before the upgrade: the browser sees a failed handshake, nothing is opened.
      throw new VirtnodeError('PERMISSION', `console ${kind} of ${name}: the ticket is missing, used, expired or for another console`, {
        hint: 'ask for a new one: POST /instances/{name}/console-tickets',
      });
    }
    await liveInstance(core, name);
  };

  app.get<{ Params: { name: string; kind: string }; Querystring: { ticket?: string } }>(
    '/instances/:name/console/:kind',
    {
      websocket: true,
      config: TICKET_AUTH,
      preValidation: spendTicket,
      schema: {
        tags: ['consoles'],
        summary: 'WebSocket (binary frames): the serial console (scroll-back, then live) or VNC (RFB, for noVNC); authorized by ?ticket=',
        params: { type: 'object', properties: { name: { type: 'string', maxLength: 63 }, kind: { type: 'string', enum: [...CONSOLE_KINDS] } }, required: ['name', 'kind'] },
        querystring: { type: 'object', properties: { ticket: { type: 'string', maxLength: 64 } } },
      },
    },
    (socket: WebSocket, request) => {
      const name = request.params.name;
      const paths = runtimePaths(core.instances.paths.instanceDir(name));
      if (request.params.kind === 'vnc') {
        bridgeVnc(socket, paths.vnc);
        return;
      }
      const session = hubs.join(name, { socket: paths.serial, log: paths.serialLog }, {
        output: (data) => {
          if (socket.readyState !== socket.OPEN || data.length === 0) return;
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

  const events = core.events;
  if (events !== undefined) eventStreamRoutes(app, core, events, tickets);
}

/**
 * The daemon's events (as on /events, starting with a `hello` listing every instance's state) for a browser:
 * POST /ui/event-tickets (behind the token) → a ticket for the WebSocket GET /ui/events?ticket=….
 */
function eventStreamRoutes(app: FastifyInstance, core: ConsoleCore, events: NonNullable<ConsoleCore['events']>, tickets: ConsoleTickets): void {
  app.post('/ui/event-tickets', { schema: { tags: ['events'], summary: 'a ticket for the events WebSocket at /ui/events (for browsers)', response: { 201: TICKET_RESPONSE } } }, async (_request, reply) => {
    const issued = tickets.issue(EVENTS_SCOPE);
    return reply.code(201).send({ ...issued, url: `${EVENTS_URL}?ticket=${encodeURIComponent(issued.ticket)}` });
  });
  app.get<{ Querystring: { ticket?: string } }>(
    EVENTS_URL,
    {
      websocket: true,
      config: TICKET_AUTH,
      schema: { tags: ['events'], summary: 'WebSocket: the events of /events, authorized by ?ticket= instead of the bearer token', querystring: { type: 'object', properties: { ticket: { type: 'string', maxLength: 64 } } } },
      preValidation: async (request) => {
        if (!tickets.redeem(request.query.ticket ?? '', EVENTS_SCOPE)) {
          throw new VirtnodeError('PERMISSION', 'events: the ticket is missing, used or expired', { hint: 'ask for a new one: POST /ui/event-tickets' });
        }
      },
    },
    (socket: WebSocket) => {
      // Subscribe first, so nothing that happens while the list is read is missed.
      const pending: unknown[] = [];
      let ready = false;
      const send = (event: unknown) => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(event));
      };
      const unsubscribe = events.subscribe((event) => (ready ? send(event) : pending.push(event)));
      socket.on('close', unsubscribe);
      socket.on('error', unsubscribe);
      void core.instances.list().then(
        (list) => {
          const instances = list.map((i) => ({ name: i.name, state: i.state, ...(i.stateReason === undefined ? {} : { reason: i.stateReason }) }));
          send({ type: 'hello', instances, at: new Date().toISOString() });
          ready = true;
          for (const event of pending.splice(0)) send(event);
        },
        () => socket.close(1011, 'cannot list the instances'),
      );
    },
  );
}
