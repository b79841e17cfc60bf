import { VirtnodeError } from '../lib/errors.ts';
import type { Db } from '../store/db.ts';
import { StorageRepository } from '../store/storage.ts';

/**
 * A template seals the current disk file in place (internal snapshots inside it would keep unsealed data and
 * memory), and a linked clone turns it into a shared base (the snapshots would stay behind on it): refused.
 */
export function assertNoSnapshots(db: Db, instance: string, action: string): void {
  const snapshots = new StorageRepository(db).snapshots(instance);
  if (snapshots.length === 0) return;
  const names = snapshots.map((s) => s.name).join(', ');
  throw new VirtnodeError('INVALID_STATE', `cannot ${action} ${instance}: it has snapshots (${names})`, {
    hint: `delete them first (virtnode snapshot rm ${instance} SNAP, which merges external ones), then try again`,
  });
}
