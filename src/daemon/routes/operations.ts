import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { GetOperationQuery, ListOperationsQuery, Operation, OperationParams, WaitQuery, withErrors } from '../../api/schemas.ts';
import type { OperationStatus } from '../../api/views.ts';
import type { DaemonCore } from '../core.ts';

export async function operationRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const ops = core.operations;
  app.get<{ Querystring: { limit?: number; status?: OperationStatus } }>(
    '/operations',
    {
      schema: {
        tags: ['operations'],
        summary: 'recent operations, newest first (kept across daemon restarts: the last 1,000, for 7 days); ?status=running|succeeded|failed|cancelled, ?limit=N (default 100)',
        querystring: ListOperationsQuery,
        response: withErrors({ 200: Type.Array(Operation) }),
      },
    },
    async (request) => ops.list({ ...(request.query.limit === undefined ? {} : { limit: request.query.limit }), ...(request.query.status === undefined ? {} : { status: request.query.status }) }),
  );

  app.get<{ Params: { id: string }; Querystring: { wait?: number } }>(
    '/operations/:id',
    { schema: { tags: ['operations'], summary: 'one operation; ?wait=SECONDS waits for it to end', params: OperationParams, querystring: GetOperationQuery, response: withErrors({ 200: Operation }) } },
    async (request) => ops.wait(request.params.id, (request.query.wait ?? 0) * 1000),
  );

  app.get<{ Params: { id: string }; Querystring: { timeout?: number; progressAfter?: number } }>(
    '/operations/:id/wait',
    {
      schema: {
        tags: ['operations'],
        summary: 'wait for an operation to end (or for new progress with ?progressAfter=N), up to ?timeout=SECONDS (default 30)',
        params: OperationParams,
        querystring: WaitQuery,
        response: withErrors({ 200: Operation }),
      },
    },
    async (request) => ops.wait(request.params.id, (request.query.timeout ?? 30) * 1000, request.query.progressAfter),
  );

  app.delete<{ Params: { id: string } }>(
    '/operations/:id',
    { schema: { tags: ['operations'], summary: 'cancel a running operation', params: OperationParams, response: withErrors({ 202: Operation }) } },
    async (request, reply) => reply.status(202).send(ops.cancel(request.params.id)),
  );
}
