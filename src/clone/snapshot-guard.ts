import { VirtnodeError } from '../lib/errors.ts';
import type { Db } from '../store/db.ts';
import { StorageRepository } from '../store/storage.ts';

/**
 * Clones and templates copy or seal the instance's current disk file only: snapshots (internal ones inside that
 * file, external ones as a chain of overlays) would be carried along half, or lose their base. Refused instead.
 */
export function assertNoSnapshots(db: Db, instance: string, action: string): void {
  const snapshots = new StorageRepository(db).snapshots(instance);
  if (snapshots.length === 0) return;
  const names = snapshots.map((s) => s.name).join(', ');
  throw new VirtnodeError('INVALID_STATE', `cannot ${action} ${instance}: it has snapshots (${names})`, {
    hint: `delete them first (virtnode snapshot rm ${instance} SNAP, which merges external ones), then try again`,
  });
}
