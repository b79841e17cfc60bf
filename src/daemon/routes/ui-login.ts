import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { UiLogin, UiLoginRedeemBody, UiSession, withErrors } from '../../api/schemas.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import type { DaemonCore } from '../core.ts';

/** How long the browser's session token lives. */
const SESSION_MS = 12 * 3_600_000;
const LOGIN_SCOPE = 'ui-login';

/**
 * A one-time login link for the web UI, so opening it needs no token pasted by hand: the host's administrator
 * (the UNIX socket, or an admin token) asks for one (`virtnode ui`); the browser trades its code, once, for a
 * session token of its own that ends by itself. The code travels in the URL's fragment, which a browser never
 * sends to a server.
 */
export async function uiLoginRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  app.post('/ui-logins', { schema: { tags: ['web UI'], summary: 'a one-time login link for the web UI (`virtnode ui`)', response: withErrors({ 201: UiLogin }) } }, async (request, reply) => {
    const web = core.webUi;
    if (web === undefined) {
      throw new VirtnodeError('INVALID_STATE', 'the web UI is served on TCP only, and this daemon does not listen on TCP', {
        hint: 'run the daemon with --listen 127.0.0.1:8443 (it makes its own certificate), or forward its socket: ssh -L 8080:/run/virtnode/virtnode.sock HOST',
      });
    }
    const { ticket, expiresAt } = core.logins.issue(LOGIN_SCOPE, request.authenticatedAs);
    return reply.code(201).send({ url: `${web.url}/ui/#login=${ticket}`, expiresAt, ...(web.tlsFingerprint256 === undefined ? {} : { tlsFingerprint256: web.tlsFingerprint256 }) });
  });

  app.post<{ Body: { code: string } }>(
    '/ui-logins/redeem',
    { config: { public: true }, schema: { tags: ['web UI'], summary: 'trades a login code (once) for a session token', body: UiLoginRedeemBody, response: withErrors({ 201: UiSession }) } },
    async (request, reply) => {
      if (core.logins.spend(request.body.code, LOGIN_SCOPE) === undefined) {
        throw new VirtnodeError('UNAUTHORIZED', 'the login link is used or expired', { hint: 'ask for a new one on the host: virtnode ui' });
      }
      const name = `ui-${randomBytes(4).toString('hex')}`;
      const { token, info } = core.tokens.create(name, { validForMs: SESSION_MS });
      request.log.info({ token: name }, 'web UI login');
      return reply.code(201).send({ token, name, expiresAt: info.expiresAt! });
    },
  );
}
