import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreContext } from '../core/context.ts';

/**
 * Is there anything storage-related a crash may have left? One query and a stat per instance, and no import of
 * the storage modules, since every command asks.
 */
export function storageNeedsRepair(core: CoreContext): boolean {
  return core.repos.storage.anyUnfinished() || core.repos.instances.list().some((i) => existsSync(join(core.paths.instanceDir(i.name), 'overlays')));
}
