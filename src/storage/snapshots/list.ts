/** An instance's snapshots. */
import { validateName } from '../../lib/names.ts';
import type { Snapshot } from '../../store/storage.ts';
import type { StorageService } from '../service.ts';

/** The instance's snapshots, oldest first; each names the snapshot it was taken from (`parent`). */
export async function listSnapshots(storage: StorageService, instanceName: string): Promise<Snapshot[]> {
  validateName('instance', instanceName);
  await storage.instance(instanceName);
  return storage.repo.snapshots(instanceName).filter((s) => s.state !== 'creating');
}
