import type { DaemonPlugin } from './app.ts';

/**
 * Plugins the daemon adds to its servers after the built-in API routes (see buildApp in app.ts). The web UI
 * registers here: `export const DAEMON_PLUGINS = [webUiPlugin]`, where webUiPlugin(app, core) adds its routes.
 */
export const DAEMON_PLUGINS: DaemonPlugin[] = [];
