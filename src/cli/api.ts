/**
 * The API for this CLI call: the daemon when one answers on the local socket (or --remote was given), else the
 * application in this process. Both are the same `Api` (src/api/contracts), so the commands cannot tell them
 * apart and print the same output either way. VIRTNODE_NO_DAEMON=1 forces the latter.
 *
 * A daemon that is not there to take a request (a socket left by a crash) is detected when the request is
 * refused before anything was done; that call and every later one then run in this process.
 */
import type { Api } from '../api/contracts/index.ts';
import { connect } from './backend.ts';

let chosen: Promise<Api> | undefined;

export function api(): Promise<Api> {
  chosen ??= choose();
  return chosen;
}

async function localApi(): Promise<Api> {
  const [{ localApi: make }, { appCore }] = await Promise.all([import('../app/local.ts'), import('./context.ts')]);
  return make(appCore());
}

async function choose(): Promise<Api> {
  const c = await connect();
  if (c.kind === 'local') return localApi();
  const { remoteApi } = await import('../client/contract-client.ts');
  const remote = remoteApi(c.client.transport());
  if (c.kind === 'remote') return remote;
  const { DaemonUnreachable } = await import('../client/http.ts');
  let fallback: Promise<Api> | undefined;
  const api: Record<string, Record<string, unknown>> = {};
  for (const [key, calls] of Object.entries(remote as unknown as Record<string, Record<string, (...a: unknown[]) => Promise<unknown>>>)) {
    api[key] = {};
    for (const [name, call] of Object.entries(calls)) {
      const local = async (args: unknown[]) => ((await fallback!) as unknown as Record<string, Record<string, (...a: unknown[]) => Promise<unknown>>>)[key]![name]!(...args);
      api[key][name] = async (...args: unknown[]) => {
        if (fallback !== undefined) return local(args);
        try {
          return await call(...args);
        } catch (e) {
          if (!(e instanceof DaemonUnreachable)) throw e;
          fallback = localApi();
          return local(args);
        }
      };
    }
  }
  return api as unknown as Api;
}
