import type { NicApi } from '../../client/nics.ts';
import { chooseBackend } from '../backend.ts';

let api: Promise<NicApi> | undefined;

/** The `virtnode nic` commands' API for this CLI call: the daemon when one runs (or --remote), else this process. */
export function nicApi(): Promise<NicApi> {
  api ??= chooseBackend<NicApi>(
    async () => {
      const [{ LocalNics }, { loadInstanceService }] = await Promise.all([import('../local/nics.ts'), import('../load-service.ts')]);
      return new LocalNics(await loadInstanceService());
    },
    async (client) => new (await import('../../client/nics.ts')).RemoteNics(client),
  );
  return api;
}
