import { existsSync } from 'node:fs';
import type { InstanceApi } from '../client/instances.ts';

let chosen: Promise<InstanceApi> | undefined;

/** The global --remote option (or VIRTNODE_REMOTE): the daemon over HTTPS, with VIRTNODE_TOKEN. */
let remoteUrl: string | undefined;
export function setRemote(url: string | undefined): void {
  remoteUrl = url;
}

/**
 * The instance API for this CLI call: the daemon when one answers on the local socket (or --remote was given),
 * else the core in this process. VIRTNODE_NO_DAEMON=1 forces the latter. A daemon that is not there to take a
 * request is detected at connect time (nothing was done), and the call falls back to local.
 */
export function instanceApi(): Promise<InstanceApi> {
  chosen ??= choose();
  return chosen;
}

async function local(): Promise<InstanceApi> {
  const [{ LocalInstances }, { loadInstanceService }] = await Promise.all([import('./local-instances.ts'), import('./load-service.ts')]);
  return new LocalInstances(await loadInstanceService());
}

async function choose(): Promise<InstanceApi> {
  const remote = remoteUrl ?? process.env['VIRTNODE_REMOTE'];
  if (remote !== undefined && remote !== '') {
    const [{ ApiClient }, { RemoteInstances }] = await Promise.all([import('../client/http.ts'), import('../client/instances.ts')]);
    return new RemoteInstances(ApiClient.https(remote, process.env['VIRTNODE_TOKEN'], process.env['VIRTNODE_CA'] || undefined));
  }
  if (process.env['VIRTNODE_NO_DAEMON'] === '1') return local();
  const { defaultSocketPath } = await import('../lib/socket-path.ts');
  const socket = defaultSocketPath();
  if (!existsSync(socket)) return local();
  const [{ ApiClient, DaemonUnreachable }, { RemoteInstances }] = await Promise.all([import('../client/http.ts'), import('../client/instances.ts')]);
  const remoteApi = new RemoteInstances(new ApiClient({ kind: 'unix', socket }));
  let fallback: Promise<InstanceApi> | undefined;
  // Each call goes to the daemon; if the daemon is gone (a stale socket), it and every later call run locally.
  return new Proxy(remoteApi, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        if (fallback !== undefined) return ((await fallback) as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[property]!(...args);
        try {
          return await (value as (...a: unknown[]) => unknown).apply(target, args);
        } catch (e) {
          if (!(e instanceof DaemonUnreachable)) throw e;
          fallback = local();
          return ((await fallback) as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[property]!(...args);
        }
      };
    },
  });
}
