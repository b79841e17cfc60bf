import type { InstanceService } from '../instances/service.ts';
import { acquireLock, lockOwner } from '../store/locks.ts';
import { StorageService } from './service.ts';
import { repairSnapshots } from './snapshots.ts';
import { repairVolumes } from './volumes.ts';

/** Volumes and snapshots left half done by a crashed process; each instance is repaired under its lock. */
export async function repairStorage(service: InstanceService): Promise<string[]> {
  const storage = new StorageService(service);
  const repaired = repairVolumes(storage, (name) => lockOwner(service.db, name) !== undefined);
  for (const instance of service.repo.list()) {
    if (lockOwner(service.db, instance.name) !== undefined) continue;
    let release: () => void;
    try {
      release = await acquireLock(service.db, instance.name, 'repair', { waitMs: 0 });
    } catch {
      continue;
    }
    try {
      const current = service.repo.get(instance.name);
      if (current !== undefined) repaired.push(...(await repairSnapshots(storage, await storage.instance(current.name))));
    } finally {
      release();
    }
  }
  return repaired;
}
