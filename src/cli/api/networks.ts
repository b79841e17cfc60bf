import type { NetworkApi } from '../../client/networks.ts';
import { chooseBackend } from '../backend.ts';

let api: Promise<NetworkApi> | undefined;

/** The `virtnode network` commands' API for this CLI call: the daemon when one runs (or --remote), else this process. */
export function networkApi(): Promise<NetworkApi> {
  api ??= chooseBackend<NetworkApi>(
    async () => {
      const [{ LocalNetworks }, { loadInstanceService }] = await Promise.all([import('../local/networks.ts'), import('../load-service.ts')]);
      return new LocalNetworks(await loadInstanceService());
    },
    async (client) => new (await import('../../client/networks.ts')).RemoteNetworks(client),
  );
  return api;
}
