/**
 * The REST API as a fastify instance: `buildApp(core, options)`. The daemon builds one per listener (the UNIX
 * socket without tokens, TCP with TLS and tokens) over one shared core; tests call `inject()` on it.
 *
 * Extending it (the web UI, later resources): pass `plugins` — each is called with the app and the core after
 * the built-in routes, so it can add routes, static files, WebSocket endpoints or hooks:
 *
 *   const webUi: DaemonPlugin = async (app, core) => { app.get('/ui', ...) };
 *   buildApp(core, { auth: 'none', plugins: [webUi] });
 *
 * The daemon's own list is DAEMON_PLUGINS in src/daemon/plugins.ts. Every route gets the error shape, token
 * checking (skipped for a route declared with `config: { public: true }`, e.g. a login page), and appears in the
 * OpenAPI document if it declares a schema. Resource routes live in src/daemon/routes/ (one module per resource,
 * listed in routes/index.ts).
 */
import { Ajv } from 'ajv';
import Fastify, { type FastifyInstance, LogController, type RouteOptions } from 'fastify';
import type { Logger } from 'pino';
import { VirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import type { DaemonCore } from './core.ts';
import { errorBody, errorHandler } from './errors.ts';
import { replayRepeatedChanges } from './idempotency.ts';
import { refuseForeignBrowser } from './origin.ts';
import { ROUTE_MODULES } from './routes/index.ts';

export const DEFAULT_BODY_LIMIT = 2 * 1024 * 1024;

/**
 * Limits on what a client holds open. A request's headers must arrive within HEADERS_TIMEOUT_MS and the whole
 * request within REQUEST_TIMEOUT_MS (a slow sender cannot hold a connection; answers, long polls, followed logs
 * and WebSockets are not limited). Past MAX_CONNECTIONS a new connection is closed at once.
 */
export const SERVER_LIMITS = {
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 30_000,
  maxConnections: Number(process.env['VIRTNODE_MAX_CONNECTIONS'] ?? 512),
};

export type DaemonPlugin = (app: FastifyInstance, core: DaemonCore) => Promise<void>;

export interface AppOptions {
  /** `token`: every request needs `Authorization: Bearer TOKEN` (TCP). `none`: the UNIX socket, guarded by its mode. */
  auth: 'none' | 'token';
  https?: { cert: string | Buffer; key: string | Buffer };
  /** A pino logger (JSON lines); default: the core's. `false`: silent (tests). */
  logger?: Logger | false;
  bodyLimit?: number;
  /** SERVER_LIMITS unless given (tests use small ones). */
  limits?: Partial<typeof SERVER_LIMITS>;
  plugins?: DaemonPlugin[];
  /** Sees every route as it is registered, plugins' included (tests: the fuzzer checks it covers them all). */
  onRoute?: (route: RouteOptions) => void;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without a token even on TCP (a login page, static assets). */
    public?: boolean;
    /** The route's core function validates its `:name` (and names the field itself); the generic check stays out. */
    nameCheckedByCore?: boolean;
    /** A POST that changes nothing (a ticket for the events stream): a read-only token may call it. */
    reads?: boolean;
  }
  interface FastifyRequest {
    /** `socket` (the UNIX socket) or `token:NAME` (a valid bearer token); undefined on a public route reached without either. */
    authenticatedAs: string | undefined;
    /** Sent with a read-only token: GET only, and no console (typing into a guest changes it). */
    readOnly: boolean;
  }
}

export async function buildApp(core: DaemonCore, options: AppOptions): Promise<FastifyInstance> {
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const limits = { ...SERVER_LIMITS, ...options.limits };
  const logger = options.logger === undefined ? core.log : options.logger;
  const handleError = errorHandler(bodyLimit);
  const app: FastifyInstance = Fastify({
    ...(logger === false ? { logger: false } : { loggerInstance: logger }),
    bodyLimit,
    ...(options.https === undefined ? {} : { https: options.https }),
    // Names are DNS labels: no route needs more, and a long URL is refused early.
    routerOptions: { maxParamLength: 253 },
    genReqId: () => crypto.randomUUID(),
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Errors the router meets before any route (a malformed %-escape, an over-long parameter) get the error
    // shape too: fastify's own answer for them has none.
    frameworkErrors: (error, request, reply) => handleError(error, request, reply),
    // One JSON line per request (below) instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
  app.server.headersTimeout = limits.headersTimeoutMs;
  app.server.maxConnections = limits.maxConnections;
  // The request that started an operation (202) names it in its log line, like every line of the work does.
  app.addHook('preSerialization', async (request, reply, payload) => {
    const op = payload as { id?: unknown; kind?: unknown } | null;
    if (reply.statusCode === 202 && typeof op === 'object' && op !== null && typeof op.id === 'string' && typeof op.kind === 'string') {
      request.log = request.log.child({ operation: op.id });
    }
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    // The route's pattern and the path, never the query string: it carries tickets.
    const req = { method: request.method, url: request.url.split('?')[0] };
    request.log.info({ req, route: request.routeOptions.url ?? '(none)', status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request');
  });

  // Bodies are checked strictly (a string is not a number, unknown fields are refused, never dropped);
  // query strings and path parameters are text, so they are converted to the declared types.
  const strict = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: true, strict: false, verbose: true });
  const coercing = new Ajv({ coerceTypes: true, removeAdditional: false, useDefaults: true, strict: false, verbose: true });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema));
  if (options.onRoute !== undefined) app.addHook('onRoute', options.onRoute);
  app.setErrorHandler(handleError);
  // Bodies are JSON only (both clients send application/json). Fastify's default text/plain parser handed a
  // text/plain body to routes that declare none, which then ran as if it were not there.
  app.removeContentTypeParser('text/plain');
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send(errorBody(new VirtnodeError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`, { hint: 'see /openapi.json or /docs' })));
  });

  // Who sent the request: the UNIX socket (its file mode is the authentication) or a valid bearer token. Routes
  // declared `public` are reached without either; a WebSocket among them (events, consoles) then asks for a
  // ticket instead (see src/daemon/ws-auth.ts).
  app.decorateRequest('authenticatedAs', undefined);
  app.decorateRequest('readOnly', false);
  app.addHook('onRequest', async (request) => {
    refuseForeignBrowser(request.headers, options.auth === 'none' ? 'socket' : 'tcp');
    if (options.auth === 'none') {
      request.authenticatedAs = 'socket';
      return;
    }
    const header = request.headers.authorization;
    const match = /^Bearer (\S+)$/.exec(header ?? '');
    const token = match === null ? undefined : core.tokens.verify(match[1]!);
    if (token !== undefined) {
      request.authenticatedAs = `token:${token.name}`;
      request.readOnly = token.scope === 'read-only';
      request.log = request.log.child({ token: token.name });
      if (request.readOnly && !['GET', 'HEAD'].includes(request.method) && request.routeOptions.config.reads !== true) {
        throw new VirtnodeError('PERMISSION', `token ${token.name} is read-only: ${request.method} changes things`, { hint: 'use a token made without --read-only' });
      }
      return;
    }
    if (request.routeOptions.config.public === true) return;
    throw new VirtnodeError('UNAUTHORIZED', match === null ? 'this API needs a bearer token' : 'the bearer token is not valid (unknown, revoked or expired)', {
      hint: 'make one on the host with `virtnode token create NAME`, then send Authorization: Bearer TOKEN (VIRTNODE_TOKEN for the CLI)',
    });
  });

  replayRepeatedChanges(app);

  // The same name rule (and message) as the CLI, before the schema's pattern: `..`, `/` or `%2F` never reach a path.
  // Routes whose core function validates its names itself (naming the field as the CLI does: `volume`, `instance`)
  // say so with `config: { nameCheckedByCore: true }`.
  app.addHook('preValidation', async (request) => {
    if (request.routeOptions.config.nameCheckedByCore === true) return;
    const params = request.params as Record<string, unknown> | undefined;
    if (params !== undefined && typeof params['name'] === 'string') validateName('name', params['name']);
  });

  const { default: swagger } = await import('@fastify/swagger');
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'virtnode API',
        version: core.version,
        description:
          'VMs on QEMU over QMP: instances, images, operations, events, metrics. A change sent with an `Idempotency-Key` header is done once: sent again with the same key, it gets the first answer (header `Idempotent-Replayed: true`).',
      },
      components: options.auth === 'token' ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } : {},
      ...(options.auth === 'token' ? { security: [{ bearer: [] }] } : {}),
    },
  });
  const { default: websocket } = await import('@fastify/websocket');
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });

  for (const routes of ROUTE_MODULES) await routes(app, core);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  const { default: swaggerUi } = await import('@fastify/swagger-ui');
  await app.register(swaggerUi, { routePrefix: '/docs' });

  for (const plugin of options.plugins ?? []) await plugin(app, core);
  return app;
}
