import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { InstanceService } from '../instances/service.ts';

/**
 * Is there anything storage-related a crash may have left? One query and a stat per instance, and no import of
 * the storage modules, since every command asks.
 */
export function storageNeedsRepair(service: InstanceService): boolean {
  const pending = service.db
    .prepare("SELECT 1 FROM snapshots WHERE state != 'ready' UNION ALL SELECT 1 FROM volumes WHERE state != 'ready' LIMIT 1")
    .get();
  return pending !== undefined || service.repo.list().some((i) => existsSync(join(service.paths.instanceDir(i.name), 'overlays')));
}
