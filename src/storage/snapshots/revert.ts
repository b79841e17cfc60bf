/** Returning an instance to a snapshot's state. */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Instance } from '../../instances/model.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { failpoint } from '../../lib/failpoint.ts';
import { validateName } from '../../lib/names.ts';
import { snapshotLoad } from '../../qmp/commands.ts';
import { transaction } from '../../store/db.ts';
import type { Snapshot } from '../../store/storage.ts';
import { createOverlay, internalSnapshot } from '../qemu-img.ts';
import { deviceId, deviceSlots, runJob } from '../qmp-block.ts';
import { isLive, type StorageService } from '../service.ts';
import { assertSettled, jobId, mustGetSnapshot, type SnapshotResult, topNodes, withTops, writableDisks } from './common.ts';
import { revertUpperSnapshot, usesUpperDir } from './upper-dir.ts';
import { overlaysDir, removeUnreferencedOverlays } from './overlays.ts';

function assertSameDisks(instance: Instance, snapshot: Snapshot): void {
  const now = writableDisks(instance).map((d) => d.id).sort();
  const then = snapshot.disks.map((d) => d.id).sort();
  if (now.join(',') !== then.join(',')) {
    throw new VirtnodeError('INVALID_STATE', `snapshot ${snapshot.name} of ${instance.name} covers disks ${then.join(', ')}, but the instance now has ${now.join(', ')}`, {
      hint: 'attach or detach volumes so the disks match the snapshot\'s, then revert',
    });
  }
}

/**
 * Returns the instance to the snapshot's state, discarding everything since. A running instance is restarted
 * when the snapshot has no memory state (external, or internal taken while stopped).
 */
export async function revertSnapshot(storage: StorageService, instanceName: string, name: string): Promise<SnapshotResult> {
  validateName('instance', instanceName);
  validateName('snapshot', name);
  // Refused at once, not queued, when another operation holds the instance: a revert discards state, and
  // whatever that operation is doing should finish and be seen first.
  return storage.instances.withLock(instanceName, 'snapshot revert', { lockWaitMs: 0 }, async () => {
    const instance = await storage.instance(instanceName);
    assertSettled(instance, 'revert a snapshot');
    const snapshot = mustGetSnapshot(storage, instance.name, name);
    if (snapshot.state !== 'ready') throw new VirtnodeError('INVALID_STATE', `snapshot ${name} is ${snapshot.state}`, { hint: 'run `virtnode reconcile`' });
    const upperDir = usesUpperDir(storage, instance);
    if (!upperDir) assertSameDisks(instance, snapshot);
    const notes: string[] = [];
    storage.repo.setSnapshotState(instance.name, name, 'reverting');
    failpoint('revert.after-mark');
    try {
      if (upperDir) await revertUpperSnapshot(storage, instance, snapshot, notes);
      else await revertLocked(storage, instance, snapshot, notes);
      failpoint('revert.after-apply');
    } catch (e) {
      storage.repo.setSnapshotState(instance.name, name, 'ready'); // failed before changing anything for good
      throw e;
    }
    transaction(storage.instances.db, () => {
      storage.repo.setSnapshotState(instance.name, name, 'ready');
      storage.repo.setCurrentSnapshot(instance.name, name);
    });
    return { snapshot: storage.repo.snapshot(instance.name, name)!, notes };
  });
}

async function revertLocked(storage: StorageService, instance: Instance, snapshot: Snapshot, notes: string[]): Promise<void> {
  const name = snapshot.name;
  const live = isLive(instance);
  if (snapshot.kind === 'internal' && snapshot.memory && live) {
    await storage.withQmp(instance, async (qmp) => {
      const nodes = await topNodes(qmp, snapshot.disks);
      const slots = await deviceSlots(qmp);
      const moved = snapshot.disks.find((d) => d.slot !== undefined && slots.get(deviceId(d.id)) !== d.slot);
      if (moved !== undefined) {
        throw new VirtnodeError('INVALID_STATE', `cannot load the memory state of snapshot ${name} into ${instance.name}: disk ${moved.id} sat at PCI ${moved.slot} when it was saved and sits at ${slots.get(deviceId(moved.id)) ?? 'no slot'} now (hot-plugged, then restarted), so QEMU cannot take the state`, {
          hint: `stop ${instance.name} and revert then: its disks go back to the snapshot and it boots from them (virtnode stop ${instance.name}; virtnode snapshot revert ${instance.name} ${name})`,
        });
      }
      const id = jobId('load');
      try {
        await runJob(qmp, id, () => snapshotLoad(qmp, { 'job-id': id, tag: name, vmstate: nodes[0]!, devices: nodes }));
      } catch (e) {
        throw new VirtnodeError('QMP_COMMAND', `QEMU could not load snapshot ${name} into ${instance.name}: ${e instanceof Error ? e.message : String(e)}`, {
          cause: e,
          hint: `the guest's memory may be half loaded: restart it (virtnode restart --force ${instance.name}), or stop it and revert then (disks only)`,
        });
      }
    });
    notes.push('memory and disks restored: the guest continues from the moment of the snapshot');
    // snapshot-load resumes the guest as it was before the load; the recorded state follows QEMU.
    await storage.instance(instance.name);
  } else {
    if (live) {
      await storage.instances.stopLocked(instance, { force: true });
      notes.push('the instance was restarted: a snapshot without memory state can only be reverted from a stopped guest');
    } else if (snapshot.memory) {
      notes.push('disks restored; the memory state is not loaded into a stopped instance: it boots from the snapshot\'s disks');
    }
    if (snapshot.kind === 'internal') {
      for (const d of snapshot.disks) await internalSnapshot('apply', d.file, name);
    } else {
      await revertExternalOffline(storage, instance.name, snapshot);
    }
    if (live) await storage.instances.startLocked(storage.instances.repo.get(instance.name)!, {});
  }
}

/** A new overlay on each disk's snapshot file becomes the disk; the discarded tops are removed after. */
async function revertExternalOffline(storage: StorageService, instanceName: string, snapshot: Snapshot): Promise<void> {
  const dir = overlaysDir(storage, instanceName);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tops = new Map<string, { path: string; format: string }>();
  for (const d of snapshot.disks) {
    const path = join(dir, `${d.id}-${snapshot.name}-r${randomBytes(3).toString('hex')}.qcow2`);
    await createOverlay(path, { path: d.file, format: d.format });
    tops.set(d.id, { path, format: 'qcow2' });
  }
  failpoint('revert.after-overlay');
  const before = storage.instances.repo.get(instanceName)!;
  storage.instances.repo.updateSpec(instanceName, withTops(before.spec, tops));
  removeUnreferencedOverlays(storage, instanceName, new Set());
}
