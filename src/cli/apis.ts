/**
 * Each command group's API for this CLI call, chosen once (src/cli/backend.ts): the daemon when one runs (or
 * --remote), else the core in this process. Both sides are imported only when first used, so a command loads
 * the code of its own group only.
 */
import type { NetworkApi } from '../client/networks.ts';
import type { NicApi } from '../client/nics.ts';
import type { PortApi } from '../client/ports.ts';
import type { SnapshotApi } from '../client/snapshots.ts';
import type { StorageApi } from '../client/storage.ts';
import type { TemplateApi } from '../client/templates.ts';
import { backendAccessor } from './backend.ts';

const instanceService = async () => (await import('./load-service.ts')).loadInstanceService();
const storageService = async () => (await import('./load-storage.ts')).loadStorageService();

export const networkApi = backendAccessor<NetworkApi>(
  async () => new (await import('./local/networks.ts')).LocalNetworks(await instanceService()),
  async (client) => new (await import('../client/networks.ts')).RemoteNetworks(client),
);

export const nicApi = backendAccessor<NicApi>(
  async () => new (await import('./local/nics.ts')).LocalNics(await instanceService()),
  async (client) => new (await import('../client/nics.ts')).RemoteNics(client),
);

export const portApi = backendAccessor<PortApi>(
  async () => new (await import('./local/ports.ts')).LocalPorts(await instanceService()),
  async (client) => new (await import('../client/ports.ts')).RemotePorts(client),
);

export const storageApi = backendAccessor<StorageApi>(
  async () => new (await import('./local/storage.ts')).LocalStorage(await storageService()),
  async (client) => new (await import('../client/storage.ts')).RemoteStorage(client),
);

export const snapshotApi = backendAccessor<SnapshotApi>(
  async () => new (await import('./local/snapshots.ts')).LocalSnapshots(await storageService()),
  async (client) => new (await import('../client/snapshots.ts')).RemoteSnapshots(client),
);

export const templateApi = backendAccessor<TemplateApi>(
  async () => {
    const [{ LocalTemplates }, { TemplateService }, instances] = await Promise.all([import('./local/templates.ts'), import('../templates/service.ts'), instanceService()]);
    return new LocalTemplates(new TemplateService(instances), instances);
  },
  async (client) => new (await import('../client/templates.ts')).RemoteTemplates(client),
);
