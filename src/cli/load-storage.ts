import type { StorageService } from '../storage/service.ts';

/** The storage service (pools, volumes, disks, snapshots), loaded only by the commands that use it. */
export async function loadStorageService(): Promise<StorageService> {
  const [{ instances }, { StorageService }] = await Promise.all([import('./context.ts'), import('../storage/service.ts')]);
  return new StorageService(instances().core);
}
