/**
 * The target side of a live move: disks of its own (linked-clone base fetched first), a paused QEMU with the
 * same device model waiting for the memory (`-incoming defer` + `migrate-incoming`), an NBD server exporting
 * the new disks to the source's mirror jobs, and the `cont` once the source says the move is complete.
 * Everything is staged in one directory the target owns; `abort` kills the QEMU and removes the directory.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VirtnodeError } from '../../lib/errors.ts';
import { failpoint } from '../../lib/failpoint.ts';
import { type ProcessIdentity, selfIdentity } from '../../lib/proc.ts';
import { Reverter } from '../../lib/reverter.ts';
import { withSignal } from '../../lib/signal.ts';
import { createImage } from '../../qemu/img.ts';
import { isOurQemu, killQemu, spawnQemu } from '../../qemu/process.ts';
import type { QemuDisk, QemuSpec } from '../../qemu/spec.ts';
import { QMP_EVENTS, cont, queryStatus, queryVersion } from '../../qmp/commands.ts';
import type { QmpConnection } from '../../qmp/connection.ts';
import { blockExportAddNbd, blockExportDel, migrateIncoming, migratePause, migrateRecover, migrateSetCapabilities, nbdServerStart, nbdServerStop, queryMigrate } from '../../qmp/migration.ts';
import { runtimePaths } from '../runtime.ts';
import type { BaseImage, MigrationOffer, TargetHost, TargetReady, TargetResumed } from './protocol.ts';
import { INCOMING_MARKER } from './stale-incoming.ts';

/** How long the target waits for the last memory to arrive after the source reported completion. */
const ARRIVAL_TIMEOUT_MS = 60_000;
const NBD_PORT_TRIES = 20;
/** While the memory arrives, how long `resume` waits for a MIGRATION event before it looks at the status again. */
const RESUME_LOOK_MS = 50;
const POSTCOPY_LOOK_MS = 5;
/** How long a post-copy being recovered may take to pause on this side. */
const PAUSE_TIMEOUT_MS = 10_000;

export interface MigrationTargetOptions {
  /** The instance directory on this host; it must not exist yet. */
  dir: string;
  /** The address this host listens on for the memory stream and the NBD disks. */
  listenHost: string;
  /** CPU models this host's QEMU offers (`-cpu help`); undefined: not checked. */
  cpuModels?: readonly string[];
  /** Returns the path of `base` on this host, fetching it first if needed (`fetchedNow`: undo removes it). */
  fetchBase: (base: BaseImage, options: { signal?: AbortSignal }) => Promise<{ path: string; fetchedNow: boolean }>;
  /**
   * What the host must have before the incoming QEMU starts besides disks (the taps of NICs on bridged networks):
   * made after the disks, before the QEMU; answers its removal, which an abort runs after stopping the QEMU.
   */
  prepareHost?: (offer: MigrationOffer, options: { signal?: AbortSignal }) => Promise<() => Promise<void>>;
  /** Runs QEMU in place through this program (`ip netns exec NS` in tests). */
  launcher?: readonly string[];
  /** This host's QEMU version (default: asked from the started QEMU before anything else). */
  qemuVersion?: { major: number; minor: number; micro: number };
}

export class MigrationTarget implements TargetHost {
  private readonly options: MigrationTargetOptions;
  private readonly undo = new Reverter();
  private qmp: QmpConnection | undefined;
  private identity: ProcessIdentity | undefined;
  private uuid: string | undefined;
  private exports: string[] = [];
  private resumed = false;
  /** `cont` was decided (or sent): an abort is refused from then on. */
  private resuming = false;
  /** An abort began: a resume waiting for the memory gives up rather than run the guest. */
  private aborting = false;
  private readonly placed: Record<string, string> = {};
  private readonly bases: Record<string, string> = {};

  constructor(options: MigrationTargetOptions) {
    this.options = options;
  }

  /** The paused (then running) QEMU's QMP connection, once prepared. */
  get connection(): QmpConnection | undefined {
    return this.qmp;
  }

  get process(): ProcessIdentity | undefined {
    return this.identity;
  }

  /** The path of each disk this host created for the VM, by disk id (the record on this host names these). */
  get placedDisks(): Readonly<Record<string, string>> {
    return this.placed;
  }

  /** Where each base image is on this host, by sha256. */
  get fetchedBases(): Readonly<Record<string, string>> {
    return this.bases;
  }

  async prepare(offer: MigrationOffer, options: { signal?: AbortSignal } = {}): Promise<TargetReady> {
    const { dir } = this.options;
    checkCpuModel(offer, this.options.cpuModels);
    if (existsSync(dir)) throw new VirtnodeError('CONFLICT', `the target already has ${dir} (an instance or an unfinished move)`, { hint: 'remove the stale instance on the target first' });
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.undo.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
      const owner = selfIdentity();
      writeFileSync(join(dir, INCOMING_MARKER), `${JSON.stringify({ id: offer.id, name: offer.vm.name, uuid: offer.vm.uuid, owner })}\n`);
      const disks = await this.createDisks(offer, options.signal);
      if (this.options.prepareHost !== undefined) {
        const undoHost = await this.options.prepareHost(offer, withSignal({}, options.signal));
        this.undo.add('remove what the host prepared (taps)', undoHost);
      }
      const paths = runtimePaths(dir);
      const spec: QemuSpec = { ...offer.vm, disks, incoming: 'defer', paths };
      const spawned = await spawnQemu(spec, withSignal({ logPath: paths.qemuLog, ...(this.options.launcher === undefined ? {} : { launcher: this.options.launcher }) }, options.signal));
      this.qmp = spawned.qmp;
      this.identity = spawned.identity;
      this.uuid = offer.vm.uuid;
      writeFileSync(join(dir, INCOMING_MARKER), `${JSON.stringify({ id: offer.id, name: offer.vm.name, uuid: offer.vm.uuid, owner, qemu: spawned.identity })}\n`);
      this.undo.add('stop the incoming QEMU', async () => {
        spawned.qmp.close();
        if (isOurQemu(spawned.identity, offer.vm.uuid)) await killQemu(spawned.identity);
      });
      await checkQemuVersion(offer, this.options.qemuVersion ?? (await queryVersion(spawned.qmp)).qemu);
      const qmpOptions = withSignal({}, options.signal);
      await migrateSetCapabilities(spawned.qmp, { events: true, ...(offer.postcopy ? { 'postcopy-ram': true } : {}) }, qmpOptions);
      const copied = offer.disks.filter((d) => d.transfer.kind === 'copy');
      let nbd: TargetReady['nbd'];
      if (copied.length > 0) {
        const port = await this.startNbd(spawned.qmp, qmpOptions);
        const exports: Record<string, string> = {};
        for (const disk of copied) {
          const name = `migrate-${disk.id}`;
          await blockExportAddNbd(spawned.qmp, { id: name, node: disk.id, name, writable: true }, qmpOptions);
          this.exports.push(name);
          exports[disk.id] = name;
        }
        nbd = { host: this.options.listenHost, port, exports };
      }
      await migrateIncoming(spawned.qmp, `tcp:${uriHost(this.options.listenHost)}:0`, qmpOptions);
      const info = await queryMigrate(spawned.qmp, qmpOptions);
      const port = info['socket-address']?.find((a) => a.type === 'inet')?.port;
      if (port === undefined) throw new VirtnodeError('INTERNAL', 'the incoming QEMU did not say which port it listens on for the migration');
      return { migrationUri: `tcp:${uriHost(this.options.listenHost)}:${port}`, ...(nbd === undefined ? {} : { nbd }) };
    } catch (e) {
      await this.abort('prepare failed');
      throw e;
    }
  }

  /**
   * Runs the guest here once its memory has arrived. The source asks as soon as its vCPUs stop for the switch
   * (or post-copy begins), while the last pages and the devices' state are still on the way: this waits for the
   * incoming QEMU's own MIGRATION events (no polling round trips in the guest's downtime) and issues `cont` the
   * moment it leaves `inmigrate`. An `abort` before that wins: the guest never runs here.
   */
  async resume(options: { signal?: AbortSignal } = {}): Promise<TargetResumed> {
    const qmp = this.qmp;
    if (qmp === undefined || this.identity === undefined) throw new VirtnodeError('INVALID_STATE', 'the target was not prepared');
    const askedAt = Date.now();
    const deadline = askedAt + ARRIVAL_TIMEOUT_MS;
    // Subscribed before the first look, so an event between the look and the wait is not missed.
    let wake: (() => void) | undefined;
    let failed: string | undefined;
    let lookMs = RESUME_LOOK_MS;
    const unsubscribe = qmp.onEvent((e) => {
      if (e.event !== QMP_EVENTS.migration) return;
      const status = e.data?.['status'];
      if (status === 'failed' || status === 'cancelled') failed = String(status);
      // Post-copy's switch makes the guest runnable shortly after this event, with no event of its own.
      if (status === 'postcopy-active') lookMs = POSTCOPY_LOOK_MS;
      wake?.();
    });
    try {
      // `inmigrate` until the last of the memory is loaded (or the post-copy switch made the guest runnable).
      for (;;) {
        if (this.aborting) throw new VirtnodeError('INVALID_STATE', 'the move was aborted on the target');
        const { status } = await queryStatus(qmp, withSignal({}, options.signal));
        if (status !== 'inmigrate') {
          if (status !== 'paused' && status !== 'running') throw new VirtnodeError('INVALID_STATE', `the incoming QEMU is "${status}", not ready to run the guest`);
          break;
        }
        if (failed !== undefined) throw new VirtnodeError('COMMAND_FAILED', `the incoming migration ${failed}`);
        if (Date.now() > deadline) throw new VirtnodeError('TIMEOUT', `the migrated memory did not finish arriving within ${ARRIVAL_TIMEOUT_MS} ms`);
        // The next MIGRATION event (completed; post-copy's run comes shortly after its postcopy-active), or a look
        // again after a while in case an event is not sent.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, lookMs);
          function done() {
            clearTimeout(timer);
            wake = undefined;
            resolve();
          }
          wake = done;
        });
      }
    } finally {
      unsubscribe();
    }
    if (this.aborting) throw new VirtnodeError('INVALID_STATE', 'the move was aborted on the target');
    // From here an abort is refused: the guest may be running here.
    this.resuming = true;
    const arrivedAt = Date.now();
    // The marker goes first: a crash between the two leaves a paused QEMU to clean up by hand, never a running
    // guest that a repair would kill while its source is already gone.
    rmSync(join(this.options.dir, INCOMING_MARKER), { force: true });
    failpoint('move.target-before-cont');
    await cont(qmp, withSignal({}, options.signal));
    const resumedAt = Date.now();
    this.resumed = true;
    this.undo.success();
    await this.stopNbd(qmp);
    return { pid: this.identity.pid, resumedAt, askedAt, arrivedAt };
  }

  async recover(options: { signal?: AbortSignal } = {}): Promise<string> {
    const qmp = this.qmp;
    if (qmp === undefined) throw new VirtnodeError('INVALID_STATE', 'the target was not prepared');
    // The source saw the link stall and paused its side; this side may still wait on the dead connection.
    const q = withSignal({}, options.signal);
    if ((await queryMigrate(qmp, q)).status === 'postcopy-active') await migratePause(qmp, q).catch(() => undefined);
    const deadline = Date.now() + PAUSE_TIMEOUT_MS;
    for (;;) {
      const { status } = await queryMigrate(qmp, q);
      if (status === 'postcopy-paused') break;
      if (Date.now() > deadline) throw new VirtnodeError('INVALID_STATE', `the incoming migration is "${status}", not paused for recovery`);
      await new Promise((r) => setTimeout(r, 20));
    }
    let lastError: unknown;
    for (let i = 0; i < NBD_PORT_TRIES; i++) {
      const uri = `tcp:${uriHost(this.options.listenHost)}:${49152 + Math.floor(Math.random() * 16000)}`;
      try {
        await migrateRecover(qmp, uri, withSignal({}, options.signal));
        return uri;
      } catch (e) {
        lastError = e;
      }
    }
    throw new VirtnodeError('COMMAND_FAILED', `could not listen again for the post-copy migration on ${this.options.listenHost}`, { cause: lastError });
  }

  async abort(_reason: string): Promise<void> {
    if (this.resumed || this.resuming) throw new VirtnodeError('INVALID_STATE', 'the guest already runs on the target; it cannot be aborted');
    this.aborting = true;
    this.exports = [];
    const failures = await this.undo.revert();
    this.qmp = undefined;
    this.identity = undefined;
    if (failures.length > 0) {
      throw new VirtnodeError('COMMAND_FAILED', `could not undo the target's preparation: ${failures.map((f) => f.what).join(', ')}`, { cause: failures[0]!.error });
    }
  }

  private async createDisks(offer: MigrationOffer, signal: AbortSignal | undefined): Promise<QemuDisk[]> {
    const disks: QemuDisk[] = [];
    for (const disk of offer.disks) {
      const common = { id: disk.id, format: disk.format, readonly: disk.readonly, ...(disk.bootIndex === undefined ? {} : { bootIndex: disk.bootIndex }), ...(disk.bus === undefined ? {} : { bus: disk.bus }) };
      if (disk.transfer.kind === 'shared') {
        disks.push({ ...common, path: disk.transfer.path });
        continue;
      }
      if (disk.readonly) throw new VirtnodeError('INVALID', `disk ${disk.id}: a read-only disk cannot be copied by a mirror; offer it as shared`, { field: 'disks' });
      const path = join(this.options.dir, `${disk.id}.${disk.format}`);
      const base = disk.transfer.base;
      if (base !== undefined) {
        if (disk.format !== 'qcow2') throw new VirtnodeError('INVALID', `disk ${disk.id}: only a qcow2 disk can be an overlay of a base image`, { field: 'disks' });
        const fetched = await this.options.fetchBase(base, withSignal({}, signal));
        this.bases[base.sha256] = fetched.path;
        if (fetched.fetchedNow) this.undo.add(`remove the fetched base ${fetched.path}`, () => rmSync(fetched.path, { force: true }));
        await createImage(path, withSignal({ format: 'qcow2' as const, sizeBytes: disk.virtualSize, backing: { path: fetched.path, format: base.format } }, signal));
      } else {
        await createImage(path, withSignal({ format: disk.format, sizeBytes: disk.virtualSize }, signal));
      }
      disks.push({ ...common, path });
      this.placed[disk.id] = path;
    }
    return disks;
  }

  /** NBD has no "pick a free port" (unlike migrate-incoming): try a few in the dynamic range. */
  private async startNbd(qmp: QmpConnection, options: { signal?: AbortSignal }): Promise<number> {
    let lastError: unknown;
    for (let i = 0; i < NBD_PORT_TRIES; i++) {
      const port = 49152 + Math.floor(Math.random() * 16000);
      try {
        await nbdServerStart(qmp, { host: this.options.listenHost, port: String(port) }, options);
        return port;
      } catch (e) {
        lastError = e;
      }
    }
    throw new VirtnodeError('COMMAND_FAILED', `could not start an NBD server on ${this.options.listenHost}`, { cause: lastError });
  }

  private async stopNbd(qmp: QmpConnection): Promise<void> {
    for (const id of this.exports) await blockExportDel(qmp, id).catch(() => {});
    if (this.exports.length > 0) await nbdServerStop(qmp).catch(() => {});
    this.exports = [];
  }

  /** The UUID of the VM being received (for isOurQemu checks by the caller). */
  get vmUuid(): string | undefined {
    return this.uuid;
  }
}

function uriHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function checkCpuModel(offer: MigrationOffer, hostModels: readonly string[] | undefined): void {
  const model = offer.cpuModel;
  if (model === 'host' || model === 'max') {
    throw new VirtnodeError('INVALID', `cpuModel: "${model}" differs from host to host; a live move needs a named CPU model`, { field: 'cpuModel', hint: 'run the instance with a named baseline model (--cpu-model)' });
  }
  if (offer.vm.tuning?.cpuModel !== model) {
    throw new VirtnodeError('INVALID', `cpuModel: the instance runs with ${offer.vm.tuning?.cpuModel === undefined ? "QEMU's default CPU" : `"${offer.vm.tuning.cpuModel}"`}, not "${model}"`, { field: 'cpuModel' });
  }
  if (hostModels !== undefined && !hostModels.includes(model)) {
    throw new VirtnodeError('HOST_UNSUPPORTED', `cpuModel: the target's QEMU has no CPU model "${model}"`, { field: 'cpuModel' });
  }
}

function checkQemuVersion(offer: MigrationOffer, own: { major: number; minor: number; micro: number }): void {
  const theirs = offer.qemuVersion;
  if (theirs.major !== own.major || theirs.minor !== own.minor) {
    throw new VirtnodeError('HOST_UNSUPPORTED', `the source runs QEMU ${theirs.major}.${theirs.minor}.${theirs.micro}, the target ${own.major}.${own.minor}.${own.micro}: their q35 machine types differ`, {
      hint: 'install the same QEMU release on both hosts',
    });
  }
}
