/** An instance's snapshots as a tree. */
import { validateName } from '../../lib/ids.ts';
import type { Snapshot } from '../../store/storage.ts';
import type { StorageService } from '../service.ts';

export interface SnapshotNode extends Snapshot {
  children: SnapshotNode[];
}

/** The instance's snapshots as a tree (each under the snapshot it was taken from). */
export async function listSnapshots(storage: StorageService, instanceName: string): Promise<SnapshotNode[]> {
  validateName('instance', instanceName);
  await storage.instance(instanceName);
  const all = storage.repo.snapshots(instanceName).filter((s) => s.state !== 'creating');
  const nodes = new Map(all.map((s) => [s.name, { ...s, children: [] as SnapshotNode[] }]));
  const roots: SnapshotNode[] = [];
  for (const node of nodes.values()) {
    const parent = node.parent === undefined ? undefined : nodes.get(node.parent);
    if (parent === undefined) roots.push(node);
    else parent.children.push(node);
  }
  return roots;
}
