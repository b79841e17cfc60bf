import { existsSync } from 'node:fs';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { WEB_UI_DIR } from '../lib/install-paths.ts';
import { type ConsoleCore, type ConsoleRoutesOptions, consoleRoutes, TICKET_AUTH } from './consoles/routes.ts';
import { SerialHubs } from './consoles/serial-hub.ts';
import { ConsoleTickets } from './consoles/tickets.ts';

export { TICKET_AUTH } from './consoles/routes.ts';
export type { ConsoleCore } from './consoles/routes.ts';

/** Where `npm run build` puts the web UI (dist/web-ui). */
export const DEFAULT_ASSETS_DIR = WEB_UI_DIR;
export const UI_PREFIX = '/ui/';

/** Keystrokes and VNC client messages are small; anything bigger is not a console client. */
const MAX_WS_MESSAGE_BYTES = 1024 * 1024;

/**
 * The page may load only its own scripts, styles, images and connections (fetch and WebSockets to the daemon).
 * `style-src 'unsafe-inline'`: xterm.js writes its theme into a <style> element it creates; scripts stay strict.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export interface WebUiOptions extends ConsoleRoutesOptions {
  /** The built UI; default dist/web-ui. */
  assetsDir?: string;
  /** Register @fastify/websocket here (default: only when the app has not registered it already). */
  registerWebsocket?: boolean;
}

const SHARED = new WeakMap<ConsoleCore, { tickets: ConsoleTickets; hubs: SerialHubs }>();

function uiNotBuilt(dir: string): string {
  return `<!doctype html><title>virtnode</title><p>The web UI is not built (${dir} is missing): run <code>npm run build</code>.</p>`;
}

/**
 * The web UI and its consoles, as one fastify plugin for the daemon's app: static assets under /ui/ with a strict
 * Content-Security-Policy, console tickets and the console WebSockets. Fastify and the UI load only in the daemon.
 */
export function webUiPlugin(core: ConsoleCore, options: WebUiOptions = {}): FastifyPluginAsync {
  // The daemon builds one app per listener (UNIX socket, TCP) over one core: they share the serial hubs (QEMU's
  // serial socket takes one client) and the tickets.
  let shared = SHARED.get(core);
  if (shared === undefined) {
    shared = { tickets: core.tickets ?? new ConsoleTickets(), hubs: new SerialHubs() };
    SHARED.set(core, shared);
  }
  const consoles: ConsoleRoutesOptions = { tickets: options.tickets ?? shared.tickets, hubs: options.hubs ?? shared.hubs };
  return async (app: FastifyInstance) => {
    const register = options.registerWebsocket ?? !app.hasDecorator('websocketServer');
    if (register) {
      const websocket = (await import('@fastify/websocket')).default;
      await app.register(websocket, { options: { maxPayload: MAX_WS_MESSAGE_BYTES } });
    }
    await consoleRoutes(app, core, consoles);

    const dir = options.assetsDir ?? DEFAULT_ASSETS_DIR;
    await app.register(async (ui) => {
      // The page and its assets load without a token: it is the page that asks for one (over TCP).
      ui.addHook('onRoute', (route) => {
        route.config = { ...(route.config ?? {}), ...TICKET_AUTH };
      });
      ui.addHook('onSend', async (request, reply, payload) => {
        reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
        reply.header('x-content-type-options', 'nosniff');
        reply.header('referrer-policy', 'no-referrer');
        reply.header('cross-origin-opener-policy', 'same-origin');
        // Vite names assets by content hash; everything else (index.html) must be revalidated.
        const cache = request.url.startsWith(`${UI_PREFIX}assets/`) ? 'public, max-age=31536000, immutable' : 'no-cache';
        reply.header('cache-control', cache);
        return payload;
      });
      if (existsSync(`${dir}/index.html`)) {
        const staticPlugin = (await import('@fastify/static')).default;
        await ui.register(staticPlugin, { root: dir, prefix: UI_PREFIX, index: ['index.html'], wildcard: true });
      } else {
        ui.get(`${UI_PREFIX}*`, async (_request, reply) => reply.code(503).type('text/html').send(uiNotBuilt(dir)));
      }
      ui.get('/ui', async (_request, reply) => reply.redirect(UI_PREFIX));
      ui.get('/', async (_request, reply) => reply.redirect(UI_PREFIX));
    });
  };
}
