/** Taking a snapshot: internal (qcow2 snapshots inside each disk, with memory when live) or external (an overlay on every disk). */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Instance } from '../../instances/model.ts';
import { runtimePaths } from '../../instances/runtime.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { failpoint } from '../../lib/failpoint.ts';
import { mapNoSpace, named } from '../../lib/no-space.ts';
import { validateName } from '../../lib/names.ts';
import { blockdevDel, QMP_COMMANDS, snapshotSave, transaction as qmpTransaction, type TransactionAction } from '../../qmp/commands.ts';
import { GuestAgent } from '../../qmp/guest-agent.ts';
import { transaction } from '../../store/db.ts';
import type { SnapshotDisk } from '../../store/storage.ts';
import { createOverlay, imageLink, internalSnapshot } from '../qemu-img.ts';
import { addBlockNode, deviceId, deviceSlots, diskNode, newNodeName, runJob } from '../qmp-block.ts';
import { isLive, type StorageService } from '../service.ts';
import { createUpperSnapshot, usesUpperDir } from './upper-dir.ts';
import { assertSettled, jobId, type SnapshotResult, topNodes, withTops } from './common.ts';
import { overlaysDir } from './overlays.ts';
import { type CreateSnapshotRequest, defaultName, planSnapshot } from './plan.ts';

const AGENT_TIMEOUT_MS = 5_000;

/** Freezes the guest's filesystems for the duration of `fn`; always thawed afterwards. */
async function quiesced<T>(storage: StorageService, instance: Instance, notes: string[], fn: () => Promise<T>): Promise<T> {
  const socket = runtimePaths(storage.paths.instanceDir(instance.name)).guestAgent;
  let agent: GuestAgent;
  try {
    agent = await GuestAgent.connect(socket, { timeoutMs: AGENT_TIMEOUT_MS });
  } catch (e) {
    throw new VirtnodeError('INVALID_STATE', `--quiesce: no guest agent answered in instance ${instance.name} within ${AGENT_TIMEOUT_MS / 1000} s`, {
      field: '--quiesce',
      cause: e,
      hint: 'install and start qemu-guest-agent in the guest, or snapshot without --quiesce (crash-consistent)',
    });
  }
  try {
    const frozen = await agent.fsfreezeFreeze();
    notes.push(`froze ${frozen} guest filesystem(s) through the guest agent, thawed after`);
    try {
      return await fn();
    } finally {
      await agent.fsfreezeThaw();
    }
  } finally {
    agent.close();
  }
}

export async function createSnapshot(storage: StorageService, request: CreateSnapshotRequest): Promise<SnapshotResult> {
  const instanceName = validateName('instance', request.instance);
  const name = validateName('snapshot', request.name ?? defaultName());
  // The record and the lock on a full disk; the snapshot itself names the directory of the files it writes.
  return mapNoSpace(`snapshot ${name} of ${instanceName}`, storage.paths.instanceDir(instanceName), () => storage.instances.withLock(instanceName, 'snapshot create', {}, async () => {
    const instance = await storage.instance(instanceName);
    if (usesUpperDir(storage, instance)) {
      assertSettled(instance, 'snapshot');
      return createUpperSnapshot(storage, instance, name, request);
    }
    const { kind, memory, existing, disks } = planSnapshot(storage, instance, name, request);
    const notes: string[] = [];
    const current = existing.find((s) => s.current)?.name;
    const snapshotDisks: SnapshotDisk[] = disks.map((d) => ({ id: d.id, file: d.path, format: d.format }));
    if (kind === 'external') {
      mkdirSync(overlaysDir(storage, instance.name), { recursive: true, mode: 0o700 });
      for (const d of snapshotDisks) d.overlay = join(overlaysDir(storage, instance.name), `${d.id}-${name}-${randomBytes(3).toString('hex')}.qcow2`);
    }
    storage.repo.insertSnapshot({ instance: instance.name, name, kind, memory, parent: current, state: 'creating', disks: snapshotDisks });
    failpoint('snapshot.after-record');
    try {
      const take = async () => {
        if (kind === 'internal') await takeInternal(storage, instance, name, snapshotDisks, memory);
        else await takeExternal(storage, instance, snapshotDisks);
      };
      if (request.quiesce) await quiesced(storage, instance, notes, take);
      else await take();
      failpoint('snapshot.after-take');
    } catch (e) {
      for (const d of snapshotDisks) if (d.overlay !== undefined) rmSync(d.overlay, { force: true });
      try {
        storage.repo.deleteSnapshot(instance.name, name);
      } catch {
        // The disk is still full (a qcow2 file does not shrink): the record stays `creating`, which the next
        // reconcile removes. The error to report is the one that ended the snapshot.
      }
      throw named(e, `snapshot ${name} of ${instance.name}`, kind === 'external' ? overlaysDir(storage, instance.name) : dirname(snapshotDisks[0]?.file ?? storage.paths.instanceDir(instance.name)));
    }
    transaction(storage.instances.db, () => {
      if (kind === 'external') {
        const fresh = storage.instances.repo.get(instance.name)!;
        storage.instances.repo.updateSpec(instance.name, withTops(fresh.spec, new Map(snapshotDisks.map((d) => [d.id, { path: d.overlay!, format: 'qcow2' }]))));
      }
      if (memory) storage.repo.setSnapshotDisks(instance.name, name, snapshotDisks); // with the devices' slots
      storage.repo.setSnapshotState(instance.name, name, 'ready');
      storage.repo.setCurrentSnapshot(instance.name, name);
    });
    return { snapshot: storage.repo.snapshot(instance.name, name)!, notes };
  }));
}

async function takeInternal(storage: StorageService, instance: Instance, name: string, disks: SnapshotDisk[], memory: boolean): Promise<void> {
  if (memory) {
    await storage.withQmp(instance, async (qmp) => {
      const nodes = await topNodes(qmp, disks);
      const slots = await deviceSlots(qmp);
      for (const d of disks) {
        const slot = slots.get(deviceId(d.id));
        if (slot !== undefined) d.slot = slot;
      }
      const id = jobId('save');
      await runJob(qmp, id, () => snapshotSave(qmp, { 'job-id': id, tag: name, vmstate: nodes[0]!, devices: nodes }));
    });
    return;
  }
  const done: SnapshotDisk[] = [];
  try {
    for (const d of disks) {
      await internalSnapshot('create', d.file, name);
      done.push(d);
    }
  } catch (e) {
    for (const d of done) await internalSnapshot('delete', d.file, name).catch(() => {});
    throw e;
  }
}

async function takeExternal(storage: StorageService, instance: Instance, disks: SnapshotDisk[]): Promise<void> {
  if (!isLive(instance)) {
    for (const d of disks) await createOverlay(d.overlay!, { path: d.file, format: d.format });
    failpoint('snapshot.after-overlays');
    return;
  }
  await storage.withQmp(instance, async (qmp) => {
    const added: string[] = [];
    try {
      const actions: TransactionAction[] = [];
      for (const d of disks) {
        const top = await diskNode(qmp, d.id);
        if (top === undefined) throw new VirtnodeError('INTERNAL', `QEMU has no device for disk ${d.id}`);
        const size = (await imageLink(d.file)).virtualSize;
        await createOverlay(d.overlay!, { path: d.file, format: d.format }, { virtualSize: size });
        const node = newNodeName(d.id);
        await addBlockNode(qmp, node, d.overlay!, 'qcow2', { backing: null });
        added.push(node);
        actions.push({ type: QMP_COMMANDS.blockdevSnapshot, data: { node: top.node, overlay: node } });
      }
      failpoint('snapshot.after-overlays');
      // All disks switch at the same instant, or none does.
      await qmpTransaction(qmp, { actions });
    } catch (e) {
      for (const node of added) await blockdevDel(qmp, { 'node-name': node }).catch(() => {});
      throw e;
    }
  });
}
