import { freemem, hostname, loadavg, release, totalmem, uptime, cpus } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { HostCheckQuery, HostReport, HostSummary, withErrors } from '../../api/schemas.ts';
import type { DaemonCore } from '../core.ts';

export async function hostRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  app.get('/host', { schema: { tags: ['host'], summary: 'this host and its instances at a glance', response: withErrors({ 200: HostSummary }) } }, async () => {
    const instances: Record<string, number> = {};
    for (const i of core.instances.repo.list()) instances[i.state] = (instances[i.state] ?? 0) + 1;
    return {
      hostname: hostname(),
      kernel: release(),
      cpus: cpus().length,
      memoryBytes: totalmem(),
      memoryAvailableBytes: freemem(),
      loadAverage: loadavg(),
      uptimeSeconds: uptime(),
      stateDir: core.paths.root,
      version: core.version,
      instances,
    };
  });

  app.get<{ Querystring: { refresh?: boolean; cpuinfo?: string } }>(
    '/host/check',
    { schema: { tags: ['host'], summary: 'the host check (`virtnode host check`)', querystring: HostCheckQuery, response: withErrors({ 200: HostReport }) } },
    async (request) => {
      const { checkHost } = await import('../../host/index.ts');
      const { cpuinfo } = request.query;
      return checkHost({ cacheDir: core.paths.hostCache, refreshProbe: request.query.refresh === true, ...(cpuinfo === undefined ? {} : { cpuinfoPath: cpuinfo }) });
    },
  );
}
