import type { DaemonPlugin } from './app.ts';

/**
 * Plugins the daemon adds to its servers after the built-in API routes (see buildApp in app.ts). The web UI
 * registers here: `export const DAEMON_PLUGINS = [webUiPlugin]`, where webUiPlugin(app, core) adds its routes.
 */
export const DAEMON_PLUGINS: DaemonPlugin[] = [
  // The web UI under /ui/, console tickets and the console WebSockets (loaded only by the daemon).
  async (app, core) => {
    const { webUiPlugin } = await import('./web-ui-plugin.ts');
    await app.register(webUiPlugin(core));
  },
];
