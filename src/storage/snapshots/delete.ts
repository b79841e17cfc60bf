/** Deleting a snapshot: internal ones from each disk, external ones by merging their file with the one above it. */
import type { Instance } from '../../instances/model.ts';
import { failpoint } from '../../lib/failpoint.ts';
import { validateName } from '../../lib/names.ts';
import { snapshotDelete } from '../../qmp/commands.ts';
import type { Snapshot } from '../../store/storage.ts';
import { imageLink, internalSnapshot } from '../qemu-img.ts';
import { runJob } from '../qmp-block.ts';
import { isLive, type StorageService } from '../service.ts';
import { assertSettled, jobId, mustGetSnapshot, type SnapshotResult, topNodes } from './common.ts';
import { merge, mergePlan } from './merge.ts';
import { deleteUpperSnapshot, usesUpperDir } from './upper-dir.ts';
import { removeUnreferencedOverlays } from './overlays.ts';

/** Deletes a snapshot; an external one's file is merged with the one file above it. */
export async function deleteSnapshot(storage: StorageService, instanceName: string, name: string): Promise<SnapshotResult> {
  validateName('instance', instanceName);
  validateName('snapshot', name);
  return storage.instances.withLock(instanceName, 'snapshot rm', {}, async () => {
    const instance = await storage.instance(instanceName);
    assertSettled(instance, 'delete a snapshot');
    const snapshot = mustGetSnapshot(storage, instance.name, name);
    return deleteLocked(storage, instance, snapshot);
  });
}

export async function deleteLocked(storage: StorageService, instance: Instance, snapshot: Snapshot): Promise<SnapshotResult> {
  if (usesUpperDir(storage, instance)) return deleteUpperSnapshot(storage, instance, snapshot);
  const notes: string[] = [];
  const live = isLive(instance);
  if (snapshot.kind === 'external') {
    // Decide for every disk before changing any.
    const plans = await Promise.all(snapshot.disks.map((d) => mergePlan(storage, instance, snapshot, d)));
    storage.repo.setSnapshotState(instance.name, snapshot.name, 'deleting');
    failpoint('snapshot-rm.after-mark');
    try {
      for (const plan of plans) await merge(storage, instance, plan, live, notes);
    } catch (e) {
      // A failed merge (job error, full disk) left the chain as it was: the snapshot stays, usable.
      storage.repo.setSnapshotState(instance.name, snapshot.name, 'ready');
      throw e;
    }
  } else {
    storage.repo.setSnapshotState(instance.name, snapshot.name, 'deleting');
    failpoint('snapshot-rm.after-mark');
    if (live) {
      await storage.withQmp(instance, async (qmp) => {
        const nodes = await topNodes(qmp, snapshot.disks);
        const id = jobId('delete');
        await runJob(qmp, id, () => snapshotDelete(qmp, { 'job-id': id, tag: snapshot.name, devices: nodes }));
      });
    } else {
      for (const d of snapshot.disks) {
        const link = await imageLink(d.file);
        if (link.snapshots.some((s) => s.name === snapshot.name)) await internalSnapshot('delete', d.file, snapshot.name);
      }
    }
  }
  failpoint('snapshot-rm.after-disks');
  storage.repo.deleteSnapshot(instance.name, snapshot.name);
  if (snapshot.kind === 'external') removeUnreferencedOverlays(storage, instance.name, new Set());
  return { snapshot, notes };
}
