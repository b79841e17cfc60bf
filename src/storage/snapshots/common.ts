/** What the snapshot operations share: the disks a snapshot covers, state checks, QEMU nodes and job ids. */
import { randomBytes } from 'node:crypto';
import type { DiskSpec, Instance, InstanceSpec } from '../../instances/model.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { validateName } from '../../lib/names.ts';
import type { QmpConnection } from '../../qmp/connection.ts';
import type { Snapshot, SnapshotDisk } from '../../store/storage.ts';
import { diskNode } from '../qmp-block.ts';
import type { StorageService } from '../service.ts';

export interface SnapshotResult {
  snapshot: Snapshot;
  /** What happened beyond the obvious (a restart, memory not restored, filesystems frozen). */
  notes: string[];
}

export function writableDisks(instance: Instance): DiskSpec[] {
  return instance.spec.disks.filter((d) => !d.readonly);
}

export function mustGetSnapshot(storage: StorageService, instance: string, name: string): Snapshot {
  const s = storage.repo.snapshot(instance, name);
  if (s === undefined || s.state === 'creating') {
    throw new VirtnodeError('NOT_FOUND', `instance ${instance} has no snapshot ${name}`, { hint: `see them with: virtnode snapshot ls ${instance}` });
  }
  return s;
}

export const SETTLED = ['defined', 'stopped', 'crashed', 'running', 'paused'];

export function assertSettled(instance: Instance, operation: string): void {
  if (!SETTLED.includes(instance.state)) {
    throw new VirtnodeError('INVALID_STATE', `cannot ${operation} of ${instance.name}: it is ${instance.state}`, { hint: 'wait for the operation in progress to end' });
  }
}

/** The checks of revertSnapshot and deleteSnapshot before the lock (names, instance, snapshot), for the API. */
export async function checkSnapshotExists(storage: StorageService, instanceName: string, name: string): Promise<void> {
  validateName('instance', instanceName);
  validateName('snapshot', name);
  const instance = await storage.instance(instanceName);
  mustGetSnapshot(storage, instance.name, name);
}

export function withTops(spec: InstanceSpec, tops: Map<string, { path: string; format: string }>): InstanceSpec {
  return {
    ...spec,
    disks: spec.disks.map((d) => {
      const top = tops.get(d.id);
      return top === undefined ? d : { ...d, path: top.path, format: top.format as DiskSpec['format'] };
    }),
  };
}

export async function topNodes(qmp: QmpConnection, disks: SnapshotDisk[]): Promise<string[]> {
  const nodes: string[] = [];
  for (const d of disks) {
    const node = await diskNode(qmp, d.id);
    if (node === undefined) throw new VirtnodeError('INTERNAL', `QEMU has no device for disk ${d.id}`);
    nodes.push(node.node);
  }
  return nodes;
}

export function jobId(kind: string): string {
  return `vn-${kind}-${randomBytes(3).toString('hex')}`;
}
