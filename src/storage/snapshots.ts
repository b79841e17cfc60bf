/**
 * Instance snapshots. Internal: qcow2 snapshots inside each disk (with the guest's memory when it runs:
 * QMP snapshot-save/-load/-delete jobs; disk-only with qemu-img when stopped). External: a new qcow2 overlay on
 * every disk (blockdev-add + blockdev-snapshot live, qemu-img offline); the file under the overlay is the
 * snapshot's state. Revert puts a fresh overlay on it; delete merges the one file above it down into it
 * (block-commit live, qemu-img commit offline). One kind per instance at a time, so neither can strand the other.
 *
 * Crash safety: a snapshot row is written first in a transitional state and the spec changes in the same
 * transaction that makes it ready; reconcile (repairSnapshots) finishes or undoes what a crash left.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DiskSpec, Instance, InstanceSpec } from '../instances/model.ts';
import { runtimePaths } from '../instances/runtime.ts';
import { invalid, VirtnodeError } from '../lib/errors.ts';
import { failpoint } from '../lib/failpoint.ts';
import { validateName } from '../lib/ids.ts';
import { GuestAgent } from '../qmp/guest-agent.ts';
import { blockCommit, blockdevDel, jobComplete, QMP_COMMANDS, queryBlockJobs, snapshotDelete, snapshotLoad, snapshotSave, transaction as qmpTransaction, type TransactionAction } from '../qmp/commands.ts';
import type { QmpConnection } from '../qmp/connection.ts';
import { transaction } from '../store/db.ts';
import type { Snapshot, SnapshotDisk } from '../store/storage.ts';
import { commitImage, createOverlay, imageLink, internalSnapshot, rebaseImage } from './qemu-img.ts';
import { addBlockNode, deviceId, deviceSlots, diskNode, formatNodeOf, newNodeName, runBlockJob, runJob } from './qmp-block.ts';
import { isLive, type StorageService } from './service.ts';

const AGENT_TIMEOUT_MS = 5_000;

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

export interface SnapshotResult {
  snapshot: Snapshot;
  /** What happened beyond the obvious (a restart, memory not restored, filesystems frozen). */
  notes: string[];
}

function defaultName(): string {
  return `snap-${new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}`;
}

function overlaysDir(storage: StorageService, instance: string): string {
  return join(storage.paths.instanceDir(instance), 'overlays');
}

function writableDisks(instance: Instance): DiskSpec[] {
  return instance.spec.disks.filter((d) => !d.readonly);
}

function describeDisk(d: DiskSpec): string {
  return d.volume === undefined ? `disk ${d.id} (${d.path})` : `disk ${d.id} (volume ${d.volume})`;
}

function mustGetSnapshot(storage: StorageService, instance: string, name: string): Snapshot {
  const s = storage.repo.snapshot(instance, name);
  if (s === undefined || s.state === 'creating') {
    throw new VirtnodeError('NOT_FOUND', `instance ${instance} has no snapshot ${name}`, { hint: `see them with: virtnode snapshot ls ${instance}` });
  }
  return s;
}

const SETTLED = ['defined', 'stopped', 'crashed', 'running', 'paused'];

function assertSettled(instance: Instance, operation: string): void {
  if (!SETTLED.includes(instance.state)) {
    throw new VirtnodeError('INVALID_STATE', `cannot ${operation} of ${instance.name}: it is ${instance.state}`, { hint: 'wait for the operation in progress to end' });
  }
}

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

/** What a create request will do, or the error it would end in: checked again under the lock by createSnapshot. */
function planSnapshot(storage: StorageService, instance: Instance, name: string, request: CreateSnapshotRequest) {
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
  planSnapshot(storage, instance, name, request);
}

/** The checks of revertSnapshot and deleteSnapshot before the lock (names, instance, snapshot), for the API. */
export async function checkSnapshotExists(storage: StorageService, instanceName: string, name: string): Promise<void> {
  validateName('instance', instanceName);
  validateName('snapshot', name);
  const instance = await storage.instance(instanceName);
  mustGetSnapshot(storage, instance.name, name);
}

export async function createSnapshot(storage: StorageService, request: CreateSnapshotRequest): Promise<SnapshotResult> {
  const instanceName = validateName('instance', request.instance);
  const name = validateName('snapshot', request.name ?? defaultName());
  return storage.instances.withLock(instanceName, 'snapshot create', {}, async () => {
    const instance = await storage.instance(instanceName);
    const { live, kind, memory, existing, disks } = planSnapshot(storage, instance, name, request);
    const notes: string[] = [];
    const current = existing.find((s) => s.current)?.name;
    const snapshotDisks: SnapshotDisk[] = disks.map((d) => ({ id: d.id, file: d.path, format: d.format }));
    if (kind === 'external') {
      mkdirSync(overlaysDir(storage, instance.name), { recursive: true, mode: 0o700 });
      for (const d of snapshotDisks) d.overlay = join(overlaysDir(storage, instance.name), `${d.id}-${name}-${randomBytes(3).toString('hex')}.qcow2`);
    }
    storage.repo.insertSnapshot({ instance: instance.name, name, kind, memory, parent: current, state: 'creating', disks: snapshotDisks });
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
      storage.repo.deleteSnapshot(instance.name, name);
      throw e;
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
  });
}

function withTops(spec: InstanceSpec, tops: Map<string, { path: string; format: string }>): InstanceSpec {
  return {
    ...spec,
    disks: spec.disks.map((d) => {
      const top = tops.get(d.id);
      return top === undefined ? d : { ...d, path: top.path, format: top.format as DiskSpec['format'] };
    }),
  };
}

async function topNodes(qmp: QmpConnection, disks: SnapshotDisk[]): Promise<string[]> {
  const nodes: string[] = [];
  for (const d of disks) {
    const node = await diskNode(qmp, d.id);
    if (node === undefined) throw new VirtnodeError('INTERNAL', `QEMU has no device for disk ${d.id}`);
    nodes.push(node.node);
  }
  return nodes;
}

function jobId(kind: string): string {
  return `vn-${kind}-${randomBytes(3).toString('hex')}`;
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
      // All disks switch at the same instant, or none does.
      await qmpTransaction(qmp, { actions });
    } catch (e) {
      for (const node of added) await blockdevDel(qmp, { 'node-name': node }).catch(() => {});
      throw e;
    }
  });
}

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
    assertSameDisks(instance, snapshot);
    const notes: string[] = [];
    storage.repo.setSnapshotState(instance.name, name, 'reverting');
    try {
      await revertLocked(storage, instance, snapshot, notes);
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

/** Every file a disk or a snapshot of the instance still needs. */
function referencedFiles(storage: StorageService, instanceName: string): Set<string> {
  const instance = storage.instances.repo.get(instanceName);
  const files = new Set<string>((instance?.spec.disks ?? []).map((d) => d.path));
  for (const s of storage.repo.snapshots(instanceName)) {
    for (const d of s.disks) {
      files.add(d.file);
      if (s.state === 'creating' && d.overlay !== undefined) files.add(d.overlay);
    }
  }
  return files;
}

/** Removes overlay files nothing refers to (left by a revert, a merge or a crash), except those QEMU has open. */
function removeUnreferencedOverlays(storage: StorageService, instanceName: string, inUse: Set<string>): string[] {
  const dir = overlaysDir(storage, instanceName);
  if (!existsSync(dir)) return [];
  const keep = referencedFiles(storage, instanceName);
  const removed: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (keep.has(path) || inUse.has(path)) continue;
    rmSync(path, { force: true });
    removed.push(path);
  }
  return removed;
}

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

async function deleteLocked(storage: StorageService, instance: Instance, snapshot: Snapshot): Promise<SnapshotResult> {
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
  storage.repo.deleteSnapshot(instance.name, snapshot.name);
  if (snapshot.kind === 'external') removeUnreferencedOverlays(storage, instance.name, new Set());
  return { snapshot, notes };
}

interface MergePlan {
  diskId: string;
  /** The snapshot's file. */
  base: SnapshotDisk;
  /** The one file whose backing is `base` (undefined: nothing uses it any more). */
  child: string | undefined;
  /** Files (other branches) whose backing is `child`: rebased onto `base` once it holds child's data. */
  grandchildren: string[];
}

/** Which files lean on the snapshot's file; a file that two branches lean on cannot be merged away. */
async function mergePlan(storage: StorageService, instance: Instance, snapshot: Snapshot, d: SnapshotDisk): Promise<MergePlan> {
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
async function merge(storage: StorageService, instance: Instance, plan: MergePlan, live: boolean, notes: string[]): Promise<void> {
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

/**
 * Repairs what a crash left: a half-made snapshot is finished (QEMU already switched to its overlays) or undone,
 * an interrupted delete is run again, the spec follows the files QEMU has open, and no overlay file is orphaned.
 */
export async function repairSnapshots(storage: StorageService, instance: Instance): Promise<string[]> {
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
