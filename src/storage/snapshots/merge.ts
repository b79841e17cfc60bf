/** Merging an external snapshot's file with the one file above it (block-commit live, qemu-img commit offline). */
import type { Instance } from '../../instances/model.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { blockCommit, blockdevDel } from '../../qmp/commands.ts';
import { transaction } from '../../store/db.ts';
import type { Snapshot, SnapshotDisk } from '../../store/storage.ts';
import { commitImage, imageLink, rebaseImage } from '../qemu-img.ts';
import { diskNode, formatNodeOf, runBlockJob } from '../qmp-block.ts';
import type { StorageService } from '../service.ts';
import { jobId, withTops } from './common.ts';

export interface MergePlan {
  diskId: string;
  /** The snapshot's file. */
  base: SnapshotDisk;
  /** The one file whose backing is `base` (undefined: nothing uses it any more). */
  child: string | undefined;
  /** Files (other branches) whose backing is `child`: rebased onto `base` once it holds child's data. */
  grandchildren: string[];
}

/** Which files lean on the snapshot's file; a file that two branches lean on cannot be merged away. */
export async function mergePlan(storage: StorageService, instance: Instance, snapshot: Snapshot, d: SnapshotDisk): Promise<MergePlan> {
  const candidates = new Map<string, string[]>(); // file → snapshots whose file it is
  const top = instance.spec.disks.find((x) => x.id === d.id);
  if (top !== undefined) candidates.set(top.path, []);
  for (const s of storage.repo.snapshots(instance.name)) {
    if (s.name === snapshot.name) continue;
    for (const x of s.disks) if (x.id === d.id) candidates.set(x.file, [...(candidates.get(x.file) ?? []), s.name]);
  }
  const backingOf = new Map<string, string | undefined>();
  for (const file of candidates.keys()) backingOf.set(file, file === d.file ? undefined : (await imageLink(file)).backing);
  const children = [...candidates.keys()].filter((f) => backingOf.get(f) === d.file);
  if (children.length > 1) {
    const names = children.flatMap((f) => candidates.get(f) ?? []).filter((n) => n !== undefined);
    throw new VirtnodeError('INVALID_STATE', `cannot delete snapshot ${snapshot.name} of ${instance.name}: its state of disk ${d.id} is the base of ${children.length} branches (made by reverting to it), and merging it into both is not supported`, {
      hint: names.length > 0 ? `delete the snapshot(s) on the other branch first (${names.join(', ')}), then this one` : 'revert to another snapshot first',
    });
  }
  const child = children[0];
  const grandchildren = child === undefined ? [] : [...candidates.keys()].filter((f) => backingOf.get(f) === child);
  return { diskId: d.id, base: d, child, grandchildren };
}

/**
 * Commits the child's data down into the snapshot's file, which then takes the child's place: as the disk's
 * top (live: an active block-commit that pivots the device), as another snapshot's file, or as the backing of
 * the child's own children.
 */
export async function merge(storage: StorageService, instance: Instance, plan: MergePlan, live: boolean, notes: string[]): Promise<void> {
  const { base, child } = plan;
  if (child === undefined) return; // the snapshot's file is left over; removed once nothing refers to it
  let committedLive = false;
  if (live) {
    committedLive = await storage.withQmp(instance, async (qmp) => {
      const node = await diskNode(qmp, plan.diskId);
      if (node === undefined || !node.files.includes(child)) return false; // another branch: not open in QEMU
      const [topNode, baseNode] = [await formatNodeOf(qmp, child), await formatNodeOf(qmp, base.file)];
      if (topNode === undefined || baseNode === undefined) throw new VirtnodeError('INTERNAL', `QEMU has no node for ${child} or ${base.file}`);
      const id = jobId('commit');
      await runBlockJob(qmp, id, () =>
        blockCommit(qmp, { 'job-id': id, device: node.node, 'top-node': topNode, 'base-node': baseNode, 'auto-dismiss': true }),
      );
      // A node opened by blockdev-add (a snapshot's overlay, or the disk given at start) outlives its removal from
      // the chain, with the base as its backing, which then refuses the next snapshot ('Node is busy'). Closing it
      // is tidying: the merge is done whatever QEMU answers (its file node may have gone with it).
      for (const name of [topNode, `${topNode}-file`]) await blockdevDel(qmp, { 'node-name': name }).catch(() => {});
      notes.push(`disk ${plan.diskId}: merged ${child} into ${base.file} live (block-commit)`);
      return true;
    });
  }
  if (!committedLive) {
    await commitImage(child);
    notes.push(`disk ${plan.diskId}: merged ${child} into ${base.file} (qemu-img commit)`);
  }
  // QEMU rewrote the backing of the live chain's file above `child`; files on other branches follow here.
  for (const g of plan.grandchildren) {
    if (committedLive && (await imageLink(g)).backing !== child) continue;
    await rebaseImage(g, { path: base.file, format: base.format }, { safe: false });
  }
  transaction(storage.instances.db, () => {
    const fresh = storage.instances.repo.get(instance.name)!;
    const top = fresh.spec.disks.find((x) => x.id === plan.diskId);
    if (top?.path === child) storage.instances.repo.updateSpec(instance.name, withTops(fresh.spec, new Map([[plan.diskId, { path: base.file, format: base.format }]])));
    for (const s of storage.repo.snapshots(instance.name)) {
      if (s.disks.some((x) => x.id === plan.diskId && x.file === child)) {
        storage.repo.setSnapshotDisks(instance.name, s.name, s.disks.map((x) => (x.id === plan.diskId && x.file === child ? { ...x, file: base.file, format: base.format } : x)));
      }
    }
  });
}
