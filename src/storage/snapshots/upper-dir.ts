/**
 * Snapshots of a container: a copy of its overlay's upper directory (everything the container wrote; the image's
 * tree below never changes) in `<instance>/snapshots/NAME`. A running container is frozen (cgroup freezer) while
 * its directory is copied, so the copy is of one moment. Revert swaps the writable layer for a copy of the
 * snapshot's (drivers/lxc/layer.ts) (a running container is stopped and started again: there is no memory state).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { driverFor } from '../../instances/drivers/index.ts';
import { ensureLayer, repairLayer, replaceLayer } from '../../instances/drivers/lxc/layer.ts';
import { copyUpper } from '../../instances/drivers/lxc/upper.ts';
import type { ContainerSpec, Instance } from '../../instances/model.ts';
import { invalid, VirtnodeError } from '../../lib/errors.ts';
import { failpoint } from '../../lib/failpoint.ts';
import { transaction } from '../../store/db.ts';
import type { Snapshot } from '../../store/storage.ts';
import { isLive, type StorageService } from '../service.ts';
import type { SnapshotResult } from './common.ts';

const UPPER_DISK_ID = 'upper';

/** The QEMU-only flags of a snapshot request (plan.ts's CreateSnapshotRequest), refused for containers. */
type SnapshotFlags = { diskOnly?: boolean; external?: boolean; quiesce?: boolean };

export function usesUpperDir(storage: StorageService, instance: Instance): boolean {
  return driverFor(storage.paths, instance).capabilities.storage === 'upper-dir';
}

function mustContainer(instance: Instance): ContainerSpec {
  if (instance.spec.container === undefined) throw new VirtnodeError('INTERNAL', `instance ${instance.name} is a container without a container spec`);
  return instance.spec.container;
}

function snapshotsDir(storage: StorageService, instance: string): string {
  return join(storage.paths.instanceDir(instance), 'snapshots');
}

/** The checks of a container snapshot: no QEMU-only flags, a free name. */
export function planUpperSnapshot(storage: StorageService, instance: Instance, name: string, request: SnapshotFlags): void {
  for (const [flag, set] of [['--disk-only', request.diskOnly], ['--external', request.external], ['--quiesce', request.quiesce]] as const) {
    if (set === true) throw invalid(flag, `${instance.name} is a container: its snapshots are copies of its files taken while it is frozen, with no memory state and no disk images`, `snapshot it without ${flag}`);
  }
  if (storage.repo.snapshot(instance.name, name) !== undefined) {
    throw new VirtnodeError('CONFLICT', `instance ${instance.name} already has a snapshot ${name}`, { field: 'snapshot', hint: 'choose another name, or delete that one first' });
  }
}

export async function createUpperSnapshot(storage: StorageService, instance: Instance, name: string, request: SnapshotFlags): Promise<SnapshotResult> {
  planUpperSnapshot(storage, instance, name, request);
  const driver = driverFor(storage.paths, instance);
  const { upper } = await ensureLayer(storage.paths.instanceDir(instance.name), mustContainer(instance));
  const dir = join(snapshotsDir(storage, instance.name), name);
  const current = storage.repo.snapshots(instance.name).find((s) => s.current)?.name;
  storage.repo.insertSnapshot({ instance: instance.name, name, kind: 'internal', memory: false, parent: current, state: 'creating', disks: [{ id: UPPER_DISK_ID, file: dir, format: 'dir' }] });
  failpoint('snapshot.after-record');
  const notes: string[] = [];
  try {
    mkdirSync(snapshotsDir(storage, instance.name), { recursive: true, mode: 0o700 });
    rmSync(dir, { recursive: true, force: true });
    if (instance.state === 'running') {
      await driver.pause(instance);
      try {
        await copyUpper(upper, dir);
      } finally {
        await driver.resume(instance);
      }
      notes.push('the container was frozen while its files were copied');
    } else {
      await copyUpper(upper, dir);
    }
    failpoint('snapshot.after-take');
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    storage.repo.deleteSnapshot(instance.name, name);
    throw e;
  }
  transaction(storage.instances.db, () => {
    storage.repo.setSnapshotState(instance.name, name, 'ready');
    storage.repo.setCurrentSnapshot(instance.name, name);
  });
  return { snapshot: storage.repo.snapshot(instance.name, name)!, notes };
}

/** Swaps the writable layer for a copy of the snapshot's, crash-safe (replaceLayer; repairLayer finishes it). */
export async function revertUpperSnapshot(storage: StorageService, instance: Instance, snapshot: Snapshot, notes: string[]): Promise<void> {
  const live = isLive(instance);
  if (live) {
    await storage.instances.stopLocked(instance, { force: true });
    notes.push('the container was restarted: its snapshots hold files, not memory');
  }
  const container = mustContainer(instance);
  await replaceLayer(storage.paths.instanceDir(instance.name), container, container.idmapBase ?? 0, snapshot.disks[0]!.file);
  if (live) await storage.instances.startLocked(storage.instances.repo.get(instance.name)!, {});
}

export function deleteUpperSnapshot(storage: StorageService, instance: Instance, snapshot: Snapshot): SnapshotResult {
  storage.repo.setSnapshotState(instance.name, snapshot.name, 'deleting');
  failpoint('snapshot-rm.after-mark');
  rmSync(snapshot.disks[0]!.file, { recursive: true, force: true });
  storage.repo.deleteSnapshot(instance.name, snapshot.name);
  return { snapshot, notes: [] };
}

/** What a crash left: a half copy is removed, a half delete finished, a half revert put back or finished. */
export async function repairUpperSnapshots(storage: StorageService, instance: Instance): Promise<string[]> {
  const repaired = (await repairLayer(storage.paths.instanceDir(instance.name), mustContainer(instance))).map((r) => `${instance.name}: ${r}`);
  for (const s of storage.repo.snapshots(instance.name)) {
    if (s.state === 'creating' || s.state === 'deleting') {
      rmSync(s.disks[0]!.file, { recursive: true, force: true });
      storage.repo.deleteSnapshot(instance.name, s.name);
      repaired.push(`${instance.name}: snapshot ${s.name} was ${s.state} when interrupted: removed`);
    } else if (s.state === 'reverting') {
      storage.repo.setSnapshotState(instance.name, s.name, 'ready');
      repaired.push(`${instance.name}: snapshot ${s.name} was being reverted: kept (the container has its files as they were before or after)`);
    }
  }
  return repaired;
}
