/**
 * Live moves at the level of instance records, for the cluster: the source host offers a running VM as its
 * record describes it and, once the guest runs on the target, quits its QEMU and forgets it; the target host
 * records the instance with the paths it gave its disks. What travels between the hosts is the protocol's
 * steps plus the instance record (JSON), whatever the transport.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { removeHost } from '../../cloudinit/known-hosts.ts';
import { join } from 'node:path';
import type { CoreContext, LockOptions } from '../../core/context.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { failpoint } from '../../lib/failpoint.ts';
import { withSignal } from '../../lib/signal.ts';
import { imageInfo } from '../../qemu/img.ts';
import { isOurQemu, killQemu, waitForExit } from '../../qemu/process.ts';
import { queryKvm, queryStatus, queryVersion, quit } from '../../qmp/commands.ts';
import { QmpConnection } from '../../qmp/connection.ts';
import type { Accel, Instance, InstanceRuntime } from '../model.ts';
import { unsafeLiveMove } from '../../qemu/ram-pad.ts';
import { checkNicsLeave, type MovingNic, movingNics } from '../../network/movable.ts';
import { toQemuNic, toQemuSpec } from '../qemu-spec.ts';
import { warmRunningSpec } from '../drivers/qemu/warm.ts';
import type { QemuSpec } from '../../qemu/spec.ts';
import { devicePlacement, placedAsRunning } from '../../qemu/placement.ts';
import { removeRuntimeFiles, runtimePaths } from '../runtime.ts';
import { buildOffer } from './offer.ts';
import { planChain } from './offline-chain.ts';
import type { DiskTransfer, MigrationResult, TargetHost } from './protocol.ts';
import { migrateOut, type MigrateOutOptions, recoverSource } from './source.ts';

/**
 * Marks a source instance directory while a move is under way: `{ id, to? }`. A crash (or a move whose outcome
 * the target never told) leaves it, and the cluster's settling of moves (src/app/move-settle.ts) decides then.
 */
export const OUTGOING_MARKER = 'outgoing.json';

export interface OutgoingMarker {
  id: string;
  /** The target host's name (absent when the engine was driven without one). */
  to?: string;
}
const QMP_CONNECT_TIMEOUT_MS = 5_000;
const QUIT_WAIT_MS = 10_000;

/** The target host as the source sees it: the protocol's steps, then the record to keep. */
export interface InstanceMoveTarget extends TargetHost {
  /** After `resume`: the target records the instance (its own paths; running, with its QEMU's pid). */
  adopt(instance: Instance, options?: { signal?: AbortSignal }): Promise<void>;
}

export interface MoveInstanceOptions extends MigrateOutOptions, LockOptions {
  /** How each disk travels, by disk id, when not the default (owned disks are copied, nothing else is). */
  transfers?: Record<string, DiskTransfer>;
  /** The target host's name, kept in the OUTGOING_MARKER for the repair after a crash. */
  to?: string;
}

/** What the target host made for an arriving guest: its QEMU, its disks and the bases they are overlays of. */
export interface Arrival {
  readonly process: { pid: number; start: string } | undefined;
  readonly placedDisks: Readonly<Record<string, string>>;
  readonly fetchedBases: Readonly<Record<string, string>>;
}

/**
 * Moves the running VM `name` to `target`. Under the instance's lock: refuses what cannot move yet, offers it,
 * runs the move, has the target adopt the record, then quits the source QEMU and removes the source's record
 * and directory. A failure before the target resumed leaves the instance as it was here.
 */
export async function moveInstanceOut(core: CoreContext, name: string, target: InstanceMoveTarget, options: MoveInstanceOptions = {}): Promise<MigrationResult> {
  return core.withLock(name, 'move', options, async () => {
    const instance = core.repos.instances.get(name);
    if (instance === undefined) throw new VirtnodeError('NOT_FOUND', `no instance named "${name}"`, { field: 'name' });
    const nics = movingNics(instance.nics, (n) => core.networks.mustGet(n));
    checkMovable(instance, nics, options.transfers);
    const dir = core.paths.instanceDir(name);
    const qmp = await QmpConnection.connect(runtimePaths(dir).qmp, withSignal({ timeoutMs: QMP_CONNECT_TIMEOUT_MS }, options.signal));
    try {
      const layout = await runningLayout(instance, qmp);
      checkLiveMoveMemory(instance, layout.runtime);
      // Disks and NICs where the running QEMU has them (a device attached live sits on a hot-plug port).
      const spec = placedAsRunning(runningQemuSpec(instance, dir, layout.runtime.accel, { restrictUserNetwork: core.networks.hasWayOut(instance) }), await devicePlacement(qmp));
      const transfers = { ...(await defaultTransfers(instance, options.transfers, { live: true })), ...options.transfers };
      const offer = await buildOffer(spec, withSignal({ qemuVersion: layout.qemuVersion, transfers, postcopy: options.postcopy === 'auto' }, options.signal));
      const marker: OutgoingMarker = { id: offer.id, ...(options.to === undefined ? {} : { to: options.to }) };
      writeFileSync(join(dir, OUTGOING_MARKER), `${JSON.stringify(marker)}\n`);
      let result: MigrationResult;
      try {
        result = await migrateOut(qmp, offer, target, options);
      } catch (e) {
        // Only once the guest runs here again: otherwise the target may run it (its answer to `resume` was lost
        // and it never said), and the marker tells the settling of moves to find out.
        if ((await queryStatus(qmp).catch(() => undefined))?.running === true) rmSync(join(dir, OUTGOING_MARKER), { force: true });
        throw e;
      }
      failpoint('move.after-resume');
      // The guest runs on the target from here on: nothing below may resume it here.
      await target.adopt(instance, withSignal({}, options.signal));
      await leaveSource(core, instance, qmp);
      return result;
    } finally {
      qmp.close();
    }
  });
}

/**
 * The source's part once the target runs the guest and has its record: quits the source's QEMU (paused since the
 * switch-over), releases its taps, and removes its record and directory. Under the instance's lock. `qmp`: the
 * caller's connection to the QEMU, if it has one.
 */
export async function leaveSource(core: CoreContext, instance: Instance, qmp?: QmpConnection): Promise<void> {
  const name = instance.name;
  const dir = core.paths.instanceDir(name);
  const nics = movingNics(instance.nics, (n) => core.networks.mustGet(n));
  const own = qmp === undefined ? await QmpConnection.connect(runtimePaths(dir).qmp, { timeoutMs: QMP_CONNECT_TIMEOUT_MS }).catch(() => undefined) : undefined;
  try {
    const conn = qmp ?? own;
    if (conn !== undefined) await quit(conn).catch(() => {});
  } finally {
    own?.close();
  }
  await sourceQemuGone(instance);
  // Its taps go once its QEMU is gone (a failure here leaves a tap the host's reconcile removes: no record).
  if (nics.length > 0) await core.networks.releaseInstance(instance).catch(() => {});
  core.repos.instances.delete(name);
  // A cluster network's record of this host's NICs drops it (the target records it as its own).
  if (nics.length > 0) await core.networks.syncReservationsOf(nics.map((n) => n.network)).catch(() => {});
  if (instance.spec.ssh !== undefined) await removeHost(core.paths.knownHosts, name).catch(() => {});
  removeRuntimeFiles(dir);
  rmSync(dir, { recursive: true, force: true });
}

/** The source's QEMU, told to quit, has exited (a large guest takes a moment to free its memory), or is killed. */
async function sourceQemuGone(instance: Instance): Promise<void> {
  if (instance.pid === undefined || instance.pidStart === undefined) return;
  const identity = { pid: instance.pid, start: instance.pidStart };
  if (await waitForExit(identity, QUIT_WAIT_MS)) return;
  if (isOurQemu(identity, instance.uuid)) await killQemu(identity).catch(() => undefined);
}

/**
 * The device model the instance's QEMU was started with, for a live move's target: a warm start's (its runtime
 * record's `warm`: machine, RAM block, generation ID, NIC ports), else a cold start's.
 */
export function runningQemuSpec(instance: Instance, dir: string, accel: Accel, options: { restrictUserNetwork?: boolean } = {}): QemuSpec {
  const warm = instance.spec.runtime?.warm;
  if (warm === undefined) return toQemuSpec(instance, dir, accel, options);
  return warmRunningSpec(instance, warm, { accel, paths: runtimePaths(dir), nics: instance.nics.map((n) => toQemuNic(instance, n, options)) });
}

/**
 * The running QEMU's layout as far as a live move goes: its accelerator and release asked of the QEMU itself, its
 * RAM padding from the record (absent: started unpadded, before virtnode recorded it).
 */
export async function runningLayout(instance: Instance, qmp: QmpConnection): Promise<{ runtime: InstanceRuntime; qemuVersion: { major: number; minor: number; micro: number } }> {
  const accel = (await queryKvm(qmp)).enabled ? 'kvm' : 'tcg';
  const v = (await queryVersion(qmp)).qemu;
  const pad = instance.spec.runtime?.memoryPadKiB;
  return { runtime: { accel, qemuVersion: `${v.major}.${v.minor}.${v.micro}`, ...(pad === undefined ? {} : { memoryPadKiB: pad }) }, qemuVersion: v };
}

/**
 * The live move's pre-check of the guest's memory layout: under TCG, QEMU before 9.0 loses what the guest writes
 * during the move unless its RAM blocks are padded (qemu/ram-pad.ts). Refused naming `offline` (the move's choice
 * between live and stopped), saying why and what to do.
 */
export function checkLiveMoveMemory(instance: Instance, runtime: InstanceRuntime): void {
  const why = unsafeLiveMove(runtime);
  if (why === undefined) return;
  const hugepages = instance.spec.tuning?.hugepages === true;
  throw new VirtnodeError('INVALID_STATE', `offline: ${instance.name} cannot move live: ${why}`, {
    field: 'offline',
    hint: hugepages
      ? 'its memory is on huge pages, which virtnode cannot pad: move it stopped (--offline), or run QEMU 9.0 or later on both hosts'
      : `move it stopped (--offline), or restart it (\`virtnode restart ${instance.name}\`) so virtnode pads its memory by 8 KiB, or run QEMU 9.0 or later on both hosts`,
  });
}

/** checkLiveMoveMemory before a move begins, asked of the instance's QEMU (in `dir`) over its query monitor. */
export async function checkMemoryMovesLive(instance: Instance, dir: string): Promise<void> {
  const qmp = await QmpConnection.connect(runtimePaths(dir).qmpQuery, { timeoutMs: QMP_CONNECT_TIMEOUT_MS });
  try {
    checkLiveMoveMemory(instance, (await runningLayout(instance, qmp)).runtime);
  } finally {
    qmp.close();
  }
}

/**
 * What keeps an instance from moving live, whatever the target: refused naming the field. `nics`: its NICs on
 * managed networks (movingNics); the target checks that it has their networks.
 */
export function checkMovable(instance: Instance, nics: readonly MovingNic[], transfers: Record<string, DiskTransfer> = {}): void {
  const name = instance.name;
  if (instance.type !== 'vm') throw new VirtnodeError('INVALID', `${name} is a system container; only VMs move live`, { field: 'name' });
  if (instance.state !== 'running') throw new VirtnodeError('INVALID_STATE', `${name} is ${instance.state}; only a running VM moves live`, { field: 'name' });
  checkNicsLeave(nics);
  if (instance.spec.tuning?.cpuModel === undefined) {
    throw new VirtnodeError('INVALID', `cpuModel: ${name} runs with QEMU's default CPU (host or max), which differs from host to host`, {
      field: 'cpuModel',
      hint: 'start it with a named baseline CPU model (--cpu-model) to move it live',
    });
  }
  const foreign = instance.spec.disks.filter((d) => !d.owned && transfers[d.id] === undefined);
  if (foreign.length > 0) {
    throw new VirtnodeError('HOST_UNSUPPORTED', `disks: ${foreign.map((d) => `${d.id} (${d.path})`).join(', ')} ${foreign.length === 1 ? 'is' : 'are'} not ${name}'s own; only the disks virtnode made for it move`, {
      field: 'disks',
      hint: 'detach the attached volume(s) first',
    });
  }
}

/**
 * Owned disks are copied (a disk over the instance's image as a linked clone of it); others must be named. Those
 * in `named` (the caller's own transfers) are left out. A disk more layers above the image (a warm launch's, over
 * the template's saved disk) is copied whole when `live` (the mirror flattens the chain); offline, it travels as
 * one overlay of the image with those layers folded in (`fold`, offline-chain.ts).
 */
export async function defaultTransfers(instance: Instance, named: Record<string, DiskTransfer> = {}, options: { live?: boolean } = {}): Promise<Record<string, DiskTransfer>> {
  const transfers: Record<string, DiskTransfer> = {};
  for (const disk of instance.spec.disks) {
    if (!disk.owned || named[disk.id] !== undefined) continue;
    const image = instance.spec.image;
    const plan = planChain(disk.id, disk.format === 'qcow2' ? await chainUpTo(disk.path, image?.path) : [disk.path], image?.path);
    if (plan.kind === 'whole' || image === undefined) transfers[disk.id] = { kind: 'copy' };
    else if (plan.fold.length > 0 && options.live === true) transfers[disk.id] = { kind: 'copy' };
    else {
      const base = { sha256: image.sha256, format: 'qcow2' as const, sourcePath: image.path };
      transfers[disk.id] = { kind: 'copy', base, ...(plan.fold.length > 0 ? { fold: plan.fold } : {}) };
    }
  }
  return transfers;
}

/** The most layers followed under a disk looking for its image. */
const MAX_CHAIN = 8;

/**
 * A qcow2 disk's file and its backing files, top first, down to `image` (or as far as qcow2 layers go: a backing
 * file that is not one ends the walk, and planChain refuses the chain).
 */
async function chainUpTo(path: string, image: string | undefined): Promise<string[]> {
  const chain = [path];
  let backing = (await imageInfo(path, { format: 'qcow2' })).backingFile;
  while (backing !== undefined && chain.length < MAX_CHAIN) {
    chain.push(backing);
    if (backing === image || image === undefined) break;
    backing = (await imageInfo(backing, { format: 'qcow2' }).catch(() => undefined))?.backingFile;
  }
  return chain;
}

/**
 * The target host's part after `resume`: the instance's record as it now is here (disk paths in this host's
 * instance directory, the image base where it was fetched, running under the new QEMU), inserted in its store.
 */
export function adoptMovedInstance(core: CoreContext, instance: Instance, target: Arrival): void {
  const identity = target.process;
  if (identity === undefined) throw new VirtnodeError('INVALID_STATE', 'the target has no QEMU running the moved instance');
  const placed = target.placedDisks;
  const disks = instance.spec.disks.map((d) => (placed[d.id] === undefined ? d : { ...d, path: placed[d.id]! }));
  const image = instance.spec.image;
  const base = image === undefined ? undefined : target.fetchedBases[image.sha256];
  const spec = { ...instance.spec, disks, ...(image !== undefined && base !== undefined ? { image: { ...image, path: base } } : {}) };
  const { pid: _pid, pidStart: _pidStart, createdAt: _created, updatedAt: _updated, ...record } = instance;
  core.db.exec('BEGIN');
  try {
    core.repos.instances.insert({ ...record, spec, state: 'running', stateReason: 'moved here live' });
    core.repos.instances.setProcess(instance.name, identity.pid, identity.start);
    core.db.exec('COMMIT');
  } catch (e) {
    core.db.exec('ROLLBACK');
    throw e;
  }
}

/**
 * The source host's repair of a move the target is known not to run (it aborted it, or never resumed the guest):
 * the migration is undone on the instance's QEMU (recoverSource: the guest runs here again) and the marker goes.
 * Under the instance's lock.
 */
export async function undoOutgoing(core: CoreContext, instance: Instance): Promise<void> {
  const dir = core.paths.instanceDir(instance.name);
  const qmp = await QmpConnection.connect(runtimePaths(dir).qmp, { timeoutMs: QMP_CONNECT_TIMEOUT_MS });
  try {
    await recoverSource(qmp);
  } finally {
    qmp.close();
  }
  rmSync(join(dir, OUTGOING_MARKER), { force: true });
}
