import Fastify, { type FastifyInstance } from 'fastify';
import { HTTP_STATUS, toVirtnodeError } from '../../src/lib/errors.ts';
import { type ConsoleCore, type WebUiOptions, webUiPlugin } from '../../src/web/plugin.ts';

/**
 * A minimal stand-in for the daemon's app (buildApp on the API branch): fastify, the error shape, and the web UI
 * plugin. Tests of the consoles use it so they do not depend on the whole API.
 */
export async function consoleTestApp(core: ConsoleCore, options: WebUiOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.setErrorHandler((error, _request, reply) => {
    const validation = (error as { validation?: unknown }).validation !== undefined;
    const e = validation ? { code: 'INVALID' as const, message: (error as Error).message, hint: undefined } : toVirtnodeError(error);
    void reply.code(validation ? 400 : HTTP_STATUS[e.code]).send({ error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } });
  });
  await app.register(webUiPlugin(core, options));
  return app;
}
