import type { StorageApi } from '../../client/storage.ts';
import { chooseBackend } from '../backend.ts';

let storage: Promise<StorageApi> | undefined;

/** Pools, volumes and disks for this CLI call: through the daemon when one runs (or --remote), else in-process. */
export function storageApi(): Promise<StorageApi> {
  storage ??= chooseBackend<StorageApi>(
    async () => {
      const [{ LocalStorage }, { loadStorageService }] = await Promise.all([import('../local/storage.ts'), import('../load-storage.ts')]);
      return new LocalStorage(await loadStorageService());
    },
    async (client) => new (await import('../../client/storage.ts')).RemoteStorage(client),
  );
  return storage;
}
