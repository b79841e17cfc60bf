import type { FastifyInstance } from 'fastify';
import type { DaemonCore } from '../core.ts';

export async function metricsRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['metrics'],
        summary: 'Prometheus metrics of the host and its instances (collected at most every 2 s)',
        produces: ['text/plain'],
        response: { 200: { type: 'string', description: 'Prometheus text exposition format 0.0.4' } },
      },
    },
    async (_request, reply) => {
      const metrics = await core.metrics();
      const text = await metrics.text();
      return reply.type(metrics.contentType).send(text);
    },
  );
}
