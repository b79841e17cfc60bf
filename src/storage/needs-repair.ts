import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreContext } from '../core/context.ts';
import { scratchRecorded } from '../lib/scratch.ts';

/**
 * Is there anything storage-related a crash may have left? One query, a stat per instance and one for scratch
 * directories, and no import of the storage modules, since every command asks.
 */
export function storageNeedsRepair(core: CoreContext): boolean {
  return core.repos.storage.anyUnfinished() || scratchRecorded(core.paths.root) || core.repos.instances.list().some((i) => existsSync(join(core.paths.instanceDir(i.name), 'overlays')));
}
