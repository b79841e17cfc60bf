/**
 * The daemon's REST routes, derived from the application's resources: each endpoint of a contract becomes one
 * route with its schemas (validation, serialization, OpenAPI), whose handler calls the application layer. Long
 * work is handed to the operation manager and answered 202 with the operation. No lifecycle logic lives here.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import Type, { type TSchema } from 'typebox';
import type { EndpointSpec } from '../api/endpoint.ts';
import { Operation, withErrors } from '../api/schemas.ts';
import { inCluster } from '../app/cluster-of.ts';
import type { Job } from '../app/operations.ts';
import { handlerOf, type Resource } from '../app/resource.ts';
import type { DaemonCore } from './core.ts';
import { ResponseCache } from './list-cache.ts';

/** A shared answer (a list) is at most this old: what lives outside the database (leases) shows within it. */
const SHARED_MAX_AGE_MS = 2_000;

export function mountResource(app: FastifyInstance, core: DaemonCore, res: Resource): void {
  const impl = res.implement(core);
  for (const [name, spec] of Object.entries(res.endpoints)) {
    const handler = handlerOf(impl, name);
    const call = async (request: FastifyRequest): Promise<unknown> => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      // Anyone but the UNIX socket's user is a remote client, whatever got them in.
      return handler({ ...body, ...(request.query as object), ...(request.params as object) }, request.authenticatedAs === 'socket' ? {} : { remote: true });
    };
    const cache = spec.shared === true ? new ResponseCache(core.db, core.events, { maxAgeMs: SHARED_MAX_AGE_MS }) : undefined;
    app.route({
      method: spec.method,
      url: spec.path,
      config: spec.nameCheckedByCore === true ? { nameCheckedByCore: true } : {},
      schema: routeSchema(res.tag, spec),
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        if (spec.operation === true) {
          const work = (await call(request)) as Job<unknown>;
          const op = core.operations.start(work.kind, work.target, (ctx) => work.run(ctx), request.authenticatedAs === undefined ? {} : { startedBy: request.authenticatedAs });
          core.changed();
          return reply.status(202).send(op);
        }
        // In a cluster a list spans the other hosts, whose changes this host's database does not see: no cache.
        if (cache !== undefined && !inCluster(core.paths.root)) {
          // Many clients share one serialized answer until something changes (see list-cache.ts).
          const body = await cache.get(async () => Buffer.from(reply.serialize(await call(request)) as string));
          return reply.type('application/json; charset=utf-8').send(body);
        }
        return reply.status(spec.status ?? 200).send(await call(request));
      },
    });
  }
}

function routeSchema(tag: string, spec: EndpointSpec): Record<string, unknown> {
  const ok: Record<number, TSchema> = spec.operation === true ? { 202: Operation } : { [spec.status ?? 200]: spec.response };
  return {
    tags: [tag],
    summary: spec.summary,
    ...(spec.params === undefined ? {} : { params: spec.params }),
    ...(spec.query === undefined ? {} : { querystring: spec.query }),
    ...(spec.body === undefined ? {} : { body: spec.bodyOptional === true ? Type.Union([spec.body, Type.Null()]) : spec.body }),
    response: withErrors(ok),
  };
}
