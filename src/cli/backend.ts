import { existsSync } from 'node:fs';
import type { ApiClient } from '../client/http.ts';
import { VirtnodeError } from '../lib/errors.ts';

/** The global --remote option (or VIRTNODE_REMOTE): the daemon over HTTPS, with VIRTNODE_TOKEN. */
let remoteUrl: string | undefined;
export function setRemote(url: string | undefined): void {
  remoteUrl = url;
}

function remoteTarget(): string | undefined {
  const remote = remoteUrl ?? process.env['VIRTNODE_REMOTE'];
  return remote === undefined || remote === '' ? undefined : remote;
}

/** Commands that work on this machine itself, and why they cannot go to a remote daemon. */
const HOST_ONLY: Record<string, string> = {
  shell: 'it runs ssh from this machine to the port QEMU forwards on the loopback of the daemon\'s host',
  exec: 'it runs ssh from this machine to the port QEMU forwards on the loopback of the daemon\'s host',
  reconcile: 'a daemon reconciles its own host when it starts and whenever it acts',
  daemon: 'it starts a daemon on this machine',
  'token create': 'tokens are made where the daemon runs, by whoever may read its state directory',
  'token ls': 'tokens are listed where the daemon runs',
  'token revoke': 'tokens are revoked where the daemon runs',
  inventory: "its SSH addresses are ports QEMU forwards on the loopback of the daemon's host",
};

/** Refuses a host-only command when --remote (or VIRTNODE_REMOTE) points at another daemon, before anything runs. */
export function refuseRemote(command: string): void {
  const remote = remoteTarget();
  const why = HOST_ONLY[command];
  if (remote === undefined || why === undefined) return;
  throw new VirtnodeError('INVALID', `--remote: \`virtnode ${command}\` cannot go to the daemon at ${remote}: ${why}`, {
    field: '--remote',
    hint: `run it on that host (e.g. ssh HOST virtnode ${command} ...), or leave out --remote and VIRTNODE_REMOTE`,
  });
}

type Connection = { kind: 'remote' | 'socket'; client: ApiClient } | { kind: 'local' };
let connection: Promise<Connection> | undefined;

/** Where this CLI call's work goes: --remote, else a daemon's local socket if one exists, else this process. */
export function connect(): Promise<Connection> {
  connection ??= (async (): Promise<Connection> => {
    const remote = remoteTarget();
    if (remote !== undefined) {
      const { ApiClient } = await import('../client/http.ts');
      return { kind: 'remote', client: ApiClient.https(remote, process.env['VIRTNODE_TOKEN'], process.env['VIRTNODE_CA'] || undefined) };
    }
    if (process.env['VIRTNODE_NO_DAEMON'] === '1') return { kind: 'local' };
    const { defaultSocketPath } = await import('../lib/socket-path.ts');
    const socket = defaultSocketPath();
    if (!existsSync(socket)) return { kind: 'local' };
    const { ApiClient } = await import('../client/http.ts');
    return { kind: 'socket', client: new ApiClient({ kind: 'unix', socket }) };
  })();
  return connection;
}

/**
 * One command group's API for this CLI call: the daemon when one answers on the local socket (or --remote was
 * given), else the core in this process. VIRTNODE_NO_DAEMON=1 forces the latter. Both sides return the same
 * views (the API's schemas), so the commands format the same output either way.
 *
 * A daemon that is not there to take a request (a socket left by a crash) is detected at connect time, before
 * anything was done; that call and every later one then run locally.
 */
export async function chooseBackend<T extends object>(makeLocal: () => Promise<T>, makeRemote: (client: ApiClient) => T | Promise<T>): Promise<T> {
  const c = await connect();
  if (c.kind === 'local') return makeLocal();
  const remoteApi = await makeRemote(c.client);
  if (c.kind === 'remote') return remoteApi;
  const { DaemonUnreachable } = await import('../client/http.ts');
  let fallback: Promise<T> | undefined;
  const call = async (api: Promise<T> | T, property: string | symbol, args: unknown[]) => ((await api) as Record<string | symbol, (...a: unknown[]) => unknown>)[property]!(...args);
  return new Proxy(remoteApi, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        if (fallback !== undefined) return call(fallback, property, args);
        try {
          return await (value as (...a: unknown[]) => unknown).apply(target, args);
        } catch (e) {
          if (!(e instanceof DaemonUnreachable)) throw e;
          fallback = makeLocal();
          return call(fallback, property, args);
        }
      };
    },
  });
}
