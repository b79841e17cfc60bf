import type { HostApi } from '../../client/host.ts';
import { chooseBackend } from '../backend.ts';

let host: Promise<HostApi> | undefined;

/** The host check for this CLI call: the daemon's host when one runs (or --remote), else this process. */
export function hostApi(): Promise<HostApi> {
  host ??= chooseBackend<HostApi>(
    async () => {
      const [{ LocalHost }, { statePaths }] = await Promise.all([import('../local/host.ts'), import('../../lib/paths.ts')]);
      return new LocalHost(statePaths().hostCache);
    },
    async (client) => new (await import('../../client/host.ts')).RemoteHost(client),
  );
  return host;
}
