import type { PortApi } from '../../client/ports.ts';
import { chooseBackend } from '../backend.ts';

let api: Promise<PortApi> | undefined;

/** The `virtnode port` commands' API for this CLI call: the daemon when one runs (or --remote), else this process. */
export function portApi(): Promise<PortApi> {
  api ??= chooseBackend<PortApi>(
    async () => {
      const [{ LocalPorts }, { loadInstanceService }] = await Promise.all([import('../local/ports.ts'), import('../load-service.ts')]);
      return new LocalPorts(await loadInstanceService());
    },
    async (client) => new (await import('../../client/ports.ts')).RemotePorts(client),
  );
  return api;
}
