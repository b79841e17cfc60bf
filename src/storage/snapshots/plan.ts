/** The checks of a create request: what it will do (kind, memory), or the error it would end in. */
import { isNfsPath } from '../../nfs/files.ts';
import { driverFor } from '../../instances/drivers/index.ts';
import type { DiskSpec, Instance } from '../../instances/model.ts';
import { invalid, VirtnodeError } from '../../lib/errors.ts';
import { validateName } from '../../lib/names.ts';
import { isLive, type StorageService } from '../service.ts';
import { planUpperSnapshot, usesUpperDir } from './upper-dir.ts';
import { assertSettled, SETTLED, writableDisks } from './common.ts';

export interface CreateSnapshotRequest {
  instance: string;
  name?: string;
  /** Running instance: an external (overlay) snapshot of the disks only, no memory state. */
  diskOnly?: boolean;
  /** Stopped instance: an external snapshot (default there: internal, disk-only). */
  external?: boolean;
  /** Freeze the guest's filesystems through its agent around the snapshot. */
  quiesce?: boolean;
}

export function defaultName(): string {
  return `snap-${new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}`;
}

function describeDisk(d: DiskSpec): string {
  return d.volume === undefined ? `disk ${d.id} (${d.path})` : `disk ${d.id} (volume ${d.volume})`;
}

/** What a create request will do, or the error it would end in: checked again under the lock by createSnapshot. */
export function planSnapshot(storage: StorageService, instance: Instance, name: string, request: CreateSnapshotRequest) {
  const driver = driverFor(storage.paths, instance);
  if (!driver.capabilities.snapshots) throw new VirtnodeError('INVALID_STATE', `instance ${instance.name} cannot have snapshots: its driver (${driver.name}) does not offer them`);
  assertSettled(instance, 'snapshot');
  const live = isLive(instance);
  if (request.external && live && !request.diskOnly) throw invalid('--external', 'for a running instance, use --disk-only (external snapshots hold no memory state)');
  const kind: 'internal' | 'external' = (live && request.diskOnly) || request.external ? 'external' : 'internal';
  const memory = live && kind === 'internal';
  if (request.quiesce && !live) throw invalid('--quiesce', `instance ${instance.name} is not running: there are no guest filesystems to freeze`);
  if (request.quiesce && memory) {
    throw invalid('--quiesce', 'a snapshot with memory state already holds the guest\'s unwritten data (and would revert into a frozen guest)', 'use --disk-only --quiesce for a consistent disk-only snapshot');
  }
  if (storage.repo.snapshot(instance.name, name) !== undefined) {
    throw new VirtnodeError('CONFLICT', `instance ${instance.name} already has a snapshot ${name}`, { field: 'snapshot', hint: 'choose another name, or delete that one first' });
  }
  const existing = storage.repo.snapshots(instance.name);
  const other = existing.find((s) => s.kind !== kind);
  if (other !== undefined) {
    throw new VirtnodeError('INVALID_STATE', `cannot take an ${kind} snapshot of ${instance.name}: it has ${other.kind} snapshots (${other.name}), and mixing them would strand one kind (an internal snapshot inside a file an external revert discards)`, {
      hint: other.kind === 'external' ? `take another external one (--disk-only running, --external stopped), or delete the external snapshots first` : `take an internal one (without --disk-only/--external), or delete the internal snapshots first`,
    });
  }
  const disks = writableDisks(instance);
  if (disks.length === 0) throw new VirtnodeError('INVALID_STATE', `instance ${instance.name} has no writable disk to snapshot`);
  const onNfs = disks.find((d) => isNfsPath(d.path));
  if (kind === 'external' && onNfs !== undefined) {
    // The overlays would sit in the instance's directory on this host (not on the export), and qemu-img cannot
    // merge one back offline: libnfs will not reopen the backing file read-write.
    throw new VirtnodeError('INVALID_STATE', `cannot take an external snapshot of ${instance.name}: ${describeDisk(onNfs)} is on an NFS export`, {
      hint: 'take an internal snapshot (without --disk-only/--external): it stays inside the qcow2 file on the export',
    });
  }
  if (kind === 'internal') {
    const raw = disks.find((d) => d.format !== 'qcow2');
    if (raw !== undefined && memory) {
      throw new VirtnodeError('INVALID_STATE', `cannot take a snapshot with memory state of ${instance.name}: ${describeDisk(raw)} is raw, which cannot hold an internal snapshot, so a revert would restore the memory but not that disk`, {
        hint: `take an external disk-only snapshot (virtnode snapshot create ${instance.name} --disk-only), or convert the volume to qcow2 / detach it`,
      });
    }
    if (raw !== undefined) {
      throw new VirtnodeError('INVALID_STATE', `cannot take an internal snapshot of ${instance.name}: ${describeDisk(raw)} is raw, and internal snapshots live inside qcow2 files`, {
        hint: `take an external snapshot (a qcow2 overlay on top of the raw disk): --external while stopped, --disk-only while running; or convert it to qcow2`,
      });
    }
  }
  return { live, kind, memory, existing, disks };
}

/**
 * The checks of createSnapshot without taking the lock or changing anything, so the API can answer bad input
 * at once (4xx) rather than as a failed operation; createSnapshot repeats them under the lock.
 */
export async function checkSnapshotCreate(storage: StorageService, request: CreateSnapshotRequest): Promise<void> {
  const instanceName = validateName('instance', request.instance);
  const name = validateName('snapshot', request.name ?? defaultName());
  const instance = await storage.instance(instanceName);
  // Another operation holds it now (starting, stopping...): createSnapshot decides once it has the lock.
  if (!SETTLED.includes(instance.state)) return;
  if (usesUpperDir(storage, instance)) return planUpperSnapshot(storage, instance, name, request);
  planSnapshot(storage, instance, name, request);
}
