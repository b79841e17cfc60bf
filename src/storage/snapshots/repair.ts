/** Finishing or undoing what a crash left of a snapshot operation. */
import type { Instance } from '../../instances/model.ts';
import { runtimePaths } from '../../instances/runtime.ts';
import { blockdevDel, jobComplete, queryBlockJobs } from '../../qmp/commands.ts';
import type { QmpConnection } from '../../qmp/connection.ts';
import { GuestAgent } from '../../qmp/guest-agent.ts';
import { imageLink, internalSnapshot } from '../qemu-img.ts';
import { diskNode, strayAddedNodes } from '../qmp-block.ts';
import { isLive, type StorageService } from '../service.ts';
import { withTops, writableDisks } from './common.ts';
import { deleteLocked } from './delete.ts';
import { repairUpperSnapshots, usesUpperDir } from './upper-dir.ts';
import { removeUnreferencedOverlays } from './overlays.ts';

/**
 * Repairs what a crash left: a half-made snapshot is finished (QEMU already switched to its overlays) or undone,
 * an interrupted delete is run again, the spec follows the files QEMU has open, and no overlay file is orphaned.
 */
export async function repairSnapshots(storage: StorageService, instance: Instance): Promise<string[]> {
  if (usesUpperDir(storage, instance)) return repairUpperSnapshots(storage, instance);
  const repaired: string[] = [];
  const live = isLive(instance);
  const inUse = new Set<string>();
  const pending = storage.repo.snapshots(instance.name).some((s) => s.state !== 'ready');
  if (live && pending) {
    await thawAfterCrash(storage, instance, repaired);
    try {
      await storage.withQmp(instance, async (qmp) => {
        await finishLeftoverJobs(qmp);
        const tops = new Map<string, { path: string; format: string }>();
        for (const d of writableDisks(instance)) {
          const node = await diskNode(qmp, d.id);
          if (node === undefined) continue;
          for (const f of node.files) inUse.add(f);
          const top = node.files[0];
          if (top !== undefined && top !== d.path) tops.set(d.id, { path: top, format: (await imageLink(top)).format });
        }
        if (tops.size > 0) {
          storage.instances.repo.updateSpec(instance.name, withTops(instance.spec, tops));
          repaired.push(`${instance.name}: disk chain updated to what QEMU uses (${[...tops.keys()].join(', ')})`);
        }
        for (const node of await strayAddedNodes(qmp, inUse)) {
          await blockdevDel(qmp, { 'node-name': node });
          repaired.push(`${instance.name}: closed block node ${node}, opened by an interrupted snapshot`);
        }
      });
    } catch {
      return repaired; // QEMU busy or gone: the next command tries again
    }
  } else if (live) {
    // Nothing was interrupted: the spec names what QEMU uses; keep its whole chain off the sweep anyway.
    for (const d of instance.spec.disks) inUse.add(d.path);
  }
  const spec = storage.instances.repo.get(instance.name)!.spec;
  for (const s of storage.repo.snapshots(instance.name)) {
    if (s.state === 'ready') continue;
    if (s.state === 'creating') {
      const switched = s.kind === 'external' && s.disks.every((d) => spec.disks.find((x) => x.id === d.id)?.path === d.overlay);
      const saved = s.kind === 'internal' && (await Promise.all(s.disks.map(async (d) => (await imageLink(d.file)).snapshots.some((x) => x.name === s.name)))).every(Boolean);
      if (switched || saved) {
        storage.repo.setSnapshotState(instance.name, s.name, 'ready');
        storage.repo.setCurrentSnapshot(instance.name, s.name);
        repaired.push(`${instance.name}: snapshot ${s.name} was taken before a crash; recorded`);
      } else {
        if (s.kind === 'internal' && !live) {
          for (const d of s.disks) await internalSnapshot('delete', d.file, s.name).catch(() => {});
        }
        storage.repo.deleteSnapshot(instance.name, s.name);
        repaired.push(`${instance.name}: an interrupted snapshot ${s.name} was undone`);
      }
    } else if (s.state === 'deleting') {
      await deleteLocked(storage, storage.instances.repo.get(instance.name)!, s);
      repaired.push(`${instance.name}: finished deleting snapshot ${s.name}`);
    } else if (s.state === 'reverting') {
      storage.repo.setSnapshotState(instance.name, s.name, 'ready');
      repaired.push(
        s.kind === 'external'
          ? `${instance.name}: an interrupted revert to ${s.name} left the disks as they were`
          : `${instance.name}: a revert to ${s.name} was interrupted; revert again to be sure every disk is at the snapshot`,
      );
    }
  }
  for (const path of removeUnreferencedOverlays(storage, instance.name, inUse)) repaired.push(`${instance.name}: removed orphan overlay ${path}`);
  return repaired;
}

/**
 * A process killed during a --quiesce snapshot leaves the guest's filesystems frozen: thaw them if an agent
 * answers (thawing a thawed guest is harmless).
 */
async function thawAfterCrash(storage: StorageService, instance: Instance, repaired: string[]): Promise<void> {
  let agent: GuestAgent | undefined;
  try {
    agent = await GuestAgent.connect(runtimePaths(storage.paths.instanceDir(instance.name)).guestAgent, { timeoutMs: 2_000 });
    if ((await agent.fsfreezeStatus({ timeoutMs: 2_000 })) === 'frozen') {
      await agent.fsfreezeThaw();
      repaired.push(`${instance.name}: thawed the guest's filesystems, left frozen by an interrupted --quiesce snapshot`);
    }
  } catch {
    /* no agent: nothing can have been frozen */
  } finally {
    agent?.close();
  }
}

/** Block jobs of ours that a crashed process left in QEMU: an active commit waiting at READY is completed. */
async function finishLeftoverJobs(qmp: QmpConnection): Promise<void> {
  const jobs = await queryBlockJobs(qmp);
  for (const job of jobs.filter((j) => j.device.startsWith('vn-'))) {
    const done = qmp.waitForEvent((e) => e.data?.['device'] === job.device && (e.event === 'BLOCK_JOB_COMPLETED' || e.event === 'BLOCK_JOB_CANCELLED'), { timeoutMs: 60_000 });
    done.catch(() => {});
    if (job.ready) await jobComplete(qmp, { id: job.device });
    await done;
  }
}
