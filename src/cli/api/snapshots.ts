import type { SnapshotApi } from '../../client/snapshots.ts';
import { chooseBackend } from '../backend.ts';

let snapshots: Promise<SnapshotApi> | undefined;

/** An instance's snapshots for this CLI call: through the daemon when one runs (or --remote), else in-process. */
export function snapshotApi(): Promise<SnapshotApi> {
  snapshots ??= chooseBackend<SnapshotApi>(
    async () => {
      const [{ LocalSnapshots }, { loadStorageService }] = await Promise.all([import('../local/snapshots.ts'), import('../load-storage.ts')]);
      return new LocalSnapshots(await loadStorageService());
    },
    async (client) => new (await import('../../client/snapshots.ts')).RemoteSnapshots(client),
  );
  return snapshots;
}
