/**
 * An instance's snapshots, implemented once over the core. Create, revert and delete are long work: bad input, a
 * missing instance or snapshot, a taken name or a wrong state are refused before the job starts.
 */
import { snapshotEndpoints } from '../api/contracts/snapshots.ts';
import { snapshotView } from './views.ts';
import type { SnapshotResult } from '../storage/snapshots.ts';
import type { AppCore } from './context.ts';
import { job } from './operations.ts';
import { resource } from './resource.ts';

const work = () => import('../storage/snapshots.ts');
const outcome = (r: SnapshotResult) => ({ snapshot: snapshotView(r.snapshot), notes: r.notes });

export const snapshots = resource('snapshots', snapshotEndpoints, (core: AppCore) => ({
  async list({ instance }) {
    return (await (await work()).listSnapshots(await core.storage(), instance)).map(snapshotView);
  },

  async create({ instance, ...options }) {
    const [{ checkSnapshotCreate, createSnapshot }, s] = await Promise.all([work(), core.storage()]);
    const request = {
      instance,
      ...(options.name === undefined ? {} : { name: options.name }),
      diskOnly: options.diskOnly === true,
      external: options.external === true,
      quiesce: options.quiesce === true,
    };
    await checkSnapshotCreate(s, request);
    return job('snapshot-create', `instances/${instance}`, async () => outcome(await createSnapshot(s, request)));
  },

  async revert({ instance, snap }) {
    const [{ checkSnapshotExists, revertSnapshot }, s] = await Promise.all([work(), core.storage()]);
    await checkSnapshotExists(s, instance, snap);
    return job('snapshot-revert', `instances/${instance}`, async () => outcome(await revertSnapshot(s, instance, snap)));
  },

  async delete({ instance, snap }) {
    const [{ checkSnapshotExists, deleteSnapshot }, s] = await Promise.all([work(), core.storage()]);
    await checkSnapshotExists(s, instance, snap);
    return job('snapshot-delete', `instances/${instance}`, async () => outcome(await deleteSnapshot(s, instance, snap)));
  },
}));
