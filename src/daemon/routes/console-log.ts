import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { NameParams, withErrors } from '../../api/schemas.ts';
import { DEFAULT_LOG_TAIL_LINES, readConsoleLog } from '../../instances/console-log.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { runtimePaths } from '../../instances/runtime.ts';
import type { DaemonCore } from '../core.ts';

const LogQuery = Type.Object(
  {
    follow: Type.Optional(Type.Boolean({ description: 'keep the response open and send what the guest writes next' })),
    lines: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000, description: `only the last this many lines of the log so far (default ${DEFAULT_LOG_TAIL_LINES})` })),
    all: Type.Optional(Type.Boolean({ description: 'the whole log so far instead of its last lines' })),
  },
  { additionalProperties: false },
);

/** GET /instances/:name/console-log[?follow=true][&lines=N|&all=true]: the serial console log as `virtnode logs` prints it. */
export async function consoleLogRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  app.get<{ Params: { name: string }; Querystring: { follow?: boolean; lines?: number; all?: boolean } }>(
    '/instances/:name/console-log',
    {
      schema: {
        tags: ['instances'],
        summary: `the instance's serial console log, kept across restarts (\`virtnode logs\`): its last ${DEFAULT_LOG_TAIL_LINES} lines, ?lines=N or ?all=true; ?follow=true streams what comes next until the client leaves`,
        params: NameParams,
        querystring: LogQuery,
        produces: ['application/octet-stream'],
        response: withErrors({ 200: Type.String({ description: 'the bytes the guest wrote on its serial console' }) }),
      },
    },
    async (request, reply) => {
      const { follow, lines, all } = request.query;
      if (all === true && lines !== undefined) throw new VirtnodeError('INVALID', 'lines: give either lines or all=true, not both', { field: 'lines' });
      const instance = await core.instances.get(request.params.name); // NOT_FOUND for an unknown name
      const path = runtimePaths(core.instances.paths.instanceDir(instance.name)).serialLog;
      const body = new PassThrough();
      const stop = new AbortController();
      const untrack = core.streams.add(request.authenticatedAs, () => reply.raw.destroy());
      reply.raw.on('close', () => {
        stop.abort(); // the client left (or the whole log was sent)
        untrack();
      });
      void readConsoleLog(path, {
        follow: follow === true,
        ...(all === true ? {} : { lines: lines ?? DEFAULT_LOG_TAIL_LINES }),
        signal: stop.signal,
        onData: async (chunk) => {
          if (!body.write(chunk)) await once(body, 'drain', { signal: stop.signal });
        },
      }).finally(() => body.end());
      return reply.type('application/octet-stream').header('cache-control', 'no-store').send(body);
    },
  );
}
