import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { NameParams, withErrors } from '../../api/schemas.ts';
import { readConsoleLog } from '../../instances/console-log.ts';
import { runtimePaths } from '../../instances/runtime.ts';
import type { DaemonCore } from '../core.ts';

const LogQuery = Type.Object({ follow: Type.Optional(Type.Boolean({ description: 'keep the response open and send what the guest writes next' })) }, { additionalProperties: false });

/** GET /instances/:name/console-log[?follow=true]: the serial console log as `virtnode logs [-f]` prints it. */
export async function consoleLogRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  app.get<{ Params: { name: string }; Querystring: { follow?: boolean } }>(
    '/instances/:name/console-log',
    {
      schema: {
        tags: ['instances'],
        summary: "the instance's serial console log, kept across restarts (`virtnode logs`); ?follow=true streams what comes next until the client leaves",
        params: NameParams,
        querystring: LogQuery,
        produces: ['application/octet-stream'],
        response: withErrors({ 200: Type.String({ description: 'the bytes the guest wrote on its serial console' }) }),
      },
    },
    async (request, reply) => {
      const instance = await core.instances.get(request.params.name); // NOT_FOUND for an unknown name
      const path = runtimePaths(core.instances.paths.instanceDir(instance.name)).serialLog;
      const body = new PassThrough();
      const stop = new AbortController();
      const untrack = core.streams.add(request.authenticatedAs, () => reply.raw.destroy());
      reply.raw.on('close', () => {
        stop.abort(); // the client left (or the whole log was sent)
        untrack();
      });
      void readConsoleLog(path, { follow: request.query.follow === true, signal: stop.signal, onData: (chunk) => body.write(chunk) }).finally(() => body.end());
      return reply.type('application/octet-stream').header('cache-control', 'no-store').send(body);
    },
  );
}
