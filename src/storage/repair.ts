import type { CoreContext } from '../core/context.ts';
import { removeAbandonedScratch } from '../lib/scratch.ts';
import { lockOwner, withLockIfFree } from '../store/locks.ts';
import { StorageService } from './service.ts';
import { repairSnapshots } from './snapshots.ts';
import { repairVolumes } from './volumes.ts';

/** Volumes and snapshots left half done by a crashed process; each instance is repaired under its lock. */
export async function repairStorage(core: CoreContext): Promise<string[]> {
  const storage = new StorageService(core);
  const repaired = [...removeAbandonedScratch(core.paths.root), ...repairVolumes(storage, (name) => lockOwner(core.db, name) !== undefined)];
  for (const instance of core.repos.instances.list()) {
    if (lockOwner(core.db, instance.name) !== undefined) continue;
    await withLockIfFree(core.db, instance.name, 'repair', async () => {
      const current = core.repos.instances.get(instance.name);
      if (current !== undefined) repaired.push(...(await repairSnapshots(storage, await storage.instance(current.name))));
    });
  }
  return repaired;
}
