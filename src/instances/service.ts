import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { VirtnodeError } from '../lib/errors.ts';
import { failpoint } from '../lib/failpoint.ts';
import { newMac, newUuid } from '../lib/ids.ts';
import type { StatePaths } from '../lib/paths.ts';
import { named } from '../lib/no-space.ts';
import { Reverter } from '../lib/reverter.ts';
import { createImage, imageInfo } from '../qemu/img.ts';
import type { CoreContext, LockOptions } from '../core/context.ts';
import { type Db, transaction } from '../store/db.ts';
import type { InstanceRepository } from '../store/instances.ts';
import { type Accel, type AccelRequest, type DiskFormat, type Instance, type InstanceRuntime, type InstanceSpec, type InstanceState, type InstanceType, type Nic, type Tuning, USER_NETWORK } from './model.ts';
import type { NetworkService } from '../network/service.ts';
import type { ConsoleEndpoints, InstanceDriver, StartOptions, StopMethod } from './driver.ts';
import { driverFor } from './drivers/index.ts';
import { resolveNic } from './nic-addresses.ts';
import type { NicRequest } from './nic-request.ts';
import { freeLoopbackPort } from '../lib/ports.ts';
import { selfIdentity } from '../lib/proc.ts';
import { claimDisks, handOverDisks, releaseDisks } from './disk-claims.ts';
import { removeFile } from '../nfs/files.ts';
import { removeHost, setHostKeys } from '../cloudinit/known-hosts.ts';
import { observeInstance } from './observe.ts';
import { sshArgv } from './ssh.ts';
import { volumeOverlays } from './volume-overlays.ts';
import { type CreateRequest, validateCreate } from './validate.ts';
import { checkTuningOnHost } from './tuning.ts';
import { tuningHostFacts } from '../host/tuning-facts.ts';
import { resolveAccelerator } from '../host/index.ts';

export const DEFAULT_STOP_TIMEOUT_MS = 60_000;

export type OperationOptions = LockOptions;

export interface StopOptions extends OperationOptions {
  force?: boolean;
  timeoutMs?: number;
}

export interface StopResult {
  instance: Instance;
  method: StopMethod;
}

function notFound(name: string): VirtnodeError {
  return new VirtnodeError('NOT_FOUND', `instance ${name} does not exist`, { hint: 'see `virtnode list` for the instances there are' });
}

function wrongState(instance: Instance, operation: string, allowed: InstanceState[], hint?: string): VirtnodeError {
  return new VirtnodeError(
    'INVALID_STATE',
    `cannot ${operation} instance ${instance.name}: it is ${instance.state} (${operation} needs ${allowed.join(' or ')})`,
    hint === undefined ? {} : { hint },
  );
}

/**
 * The instance lifecycle: the one place that creates, starts, stops and deletes instances. The CLI, the API and
 * the web UI all call this. Every operation takes the instance's lock, so operations on one instance are
 * serialized while different instances proceed in parallel. The states, locks, records and networks are kept
 * here; the process that runs an instance is its driver's (driver.ts).
 */
export class InstanceService {
  readonly core: CoreContext;

  /** Cheap: every piece of state lives in the core context, so any module may make one over it. */
  constructor(core: CoreContext) {
    this.core = core;
  }

  // Shorthands for the core context's, for the fronts that still reach the core through this service.
  get paths(): StatePaths {
    return this.core.paths;
  }

  get db(): Db {
    return this.core.db;
  }

  get repo(): InstanceRepository {
    return this.core.repos.instances;
  }

  get networks(): NetworkService {
    return this.core.networks;
  }

  ensureReconciled(): Promise<void> {
    return this.core.ensureReconciled();
  }

  /** Runs `fn` under the instance's lock (after reconciling once). */
  locked<T>(name: string, operation: string, options: OperationOptions, fn: () => Promise<T>): Promise<T> {
    return this.core.withLock(name, operation, options, fn);
  }

  /** Runs `fn` under the instance's lock (for other modules' per-instance operations: disks, snapshots). */
  withLock<T>(name: string, operation: string, options: OperationOptions, fn: () => Promise<T>): Promise<T> {
    return this.core.withLock(name, operation, options, fn);
  }

  /** The driver that runs this instance (drivers/index.ts). */
  driver(instance: Instance): InstanceDriver {
    return driverFor(this.paths, instance);
  }

  /**
   * The argv that runs `command` in a running instance: the driver's own door (lxc-attach for a container), else
   * SSH with the injected host key checked strictly.
   */
  async execArgv(name: string, command: string[], options: { tty?: boolean } = {}): Promise<string[]> {
    const instance = await this.get(name);
    if (instance.state !== 'running') {
      throw new VirtnodeError('INVALID_STATE', `instance ${name} is ${instance.state}`, { hint: instance.state === 'paused' ? `resume it: virtnode resume ${name}` : `start it: virtnode start ${name}` });
    }
    return this.driver(instance).execArgv(instance, command) ?? sshArgv(this.paths, instance, command, options);
  }

  /** Where a recorded instance's consoles are (they exist while it runs). */
  consoles(name: string): ConsoleEndpoints {
    const instance = this.mustGet(name);
    return this.driver(instance).consoles(instance);
  }

  mustGet(name: string): Instance {
    const instance = this.repo.get(name);
    if (instance !== undefined) return instance;
    if (this.core.repos.templates.get(name) !== undefined) {
      throw new VirtnodeError('INVALID_STATE', `${name} is a template: a template never starts or changes (its disk is the read-only base of its clones)`, {
        hint: `make an instance of it: virtnode launch ${name}, or virtnode clone ${name} NEW --linked`,
      });
    }
    throw notFound(name);
  }

  async list(): Promise<Instance[]> {
    await this.ensureReconciled();
    return Promise.all(this.repo.list().map((i) => observeInstance(this.core, i)));
  }

  async get(name: string): Promise<Instance> {
    await this.ensureReconciled();
    return observeInstance(this.core, this.mustGet(name));
  }

  async create(request: CreateRequest, options: OperationOptions = {}): Promise<Instance> {
    const valid = validateCreate(request, this.core.limits);
    const spec: InstanceSpec = { cpus: valid.cpus, memoryMiB: valid.memoryMiB, accel: valid.accel, disks: [] };
    if (valid.tuning !== undefined) {
      await this.checkTuning(valid.tuning, { memoryMiB: valid.memoryMiB, accel: valid.accel, nics: valid.nics });
      spec.tuning = valid.tuning;
    }
    if (valid.boot !== undefined) spec.boot = valid.boot;
    return this.define(valid.name, spec, { nics: valid.nics, ...options }, async (dir) => {
      if (valid.disk !== undefined && 'sizeBytes' in valid.disk) {
        const path = join(dir, 'disk0.qcow2');
        await createImage(path, { format: 'qcow2', sizeBytes: valid.disk.sizeBytes, ...(options.signal ? { signal: options.signal } : {}) });
        spec.disks.push({ id: 'disk0', path, format: 'qcow2', owned: true });
      } else if (valid.disk !== undefined) {
        const info = await imageInfo(valid.disk.path);
        if (info.format !== 'qcow2' && info.format !== 'raw') {
          throw new VirtnodeError('INVALID', `--disk: ${valid.disk.path} is a ${info.format} image`, {
            field: '--disk',
            hint: 'convert it first: qemu-img convert -O qcow2 SRC DST',
          });
        }
        this.assertDiskUnused(valid.disk.path);
        spec.disks.push({ id: 'disk0', path: valid.disk.path, format: info.format as DiskFormat, owned: false });
      }
      return spec;
    });
  }

  /**
   * Checks tuning knobs against this host before an instance is defined (each start checks again). `host` as CPU
   * model needs to know the accelerator a start would get, so only then is it resolved (the probe is cached).
   */
  async checkTuning(tuning: Tuning, instance: { memoryMiB: number; accel: AccelRequest; nics: readonly NicRequest[] }): Promise<void> {
    let accel: Accel | undefined = instance.accel === 'auto' ? undefined : instance.accel;
    if (tuning.cpuModel === 'host' && accel === undefined) accel = (await resolveAccelerator('auto', { cacheDir: this.paths.hostCache })).accel;
    const tapNics = instance.nics.filter((n) => n.network !== USER_NETWORK && n.network !== 'none').length;
    checkTuningOnHost(tuning, { memoryMiB: instance.memoryMiB, tapNics, ...(accel === undefined ? {} : { accel }) }, await tuningHostFacts(this.paths.root));
  }

  /**
   * Defines an instance: record (state creating) → its directory → `build` makes disks and files in it and
   * returns the final spec → state defined. Any failure, or a crash (repaired by reconcile), undoes it all.
   */
  async define(
    name: string,
    draft: InstanceSpec,
    /** `uuid`: keep this one (an imported definition's) instead of making a new one. */
    options: OperationOptions & { nics?: NicRequest[]; uuid?: string; type?: InstanceType },
    build: (dir: string, reverter: Reverter) => Promise<InstanceSpec>,
  ): Promise<Instance> {
    return this.locked(name, 'create', { ...options, lockWaitMs: 0 }, async () => {
      if (this.repo.get(name) !== undefined) {
        throw new VirtnodeError('CONFLICT', `instance ${name} already exists`, { field: 'name', hint: 'choose another name, or delete it first' });
      }
      if (this.core.repos.templates.get(name) !== undefined) {
        throw new VirtnodeError('CONFLICT', `${name} is the name of a template`, { field: 'name', hint: 'templates and instances share one namespace: choose another name' });
      }
      const dir = this.paths.instanceDir(name);
      const reverter = new Reverter();
      try {
        const requests = options.nics ?? [{ network: USER_NETWORK }];
        // In a cluster: its networks' definitions here, and the addresses other hosts hold, before any is chosen.
        await this.networks.beforeNics(requests.map((r) => r.network));
        transaction(this.db, () => {
          const nics: Nic[] = [];
          for (const [index, request] of requests.entries()) {
            if (request.mac !== undefined && (this.repo.macInUse(request.mac) || nics.some((n) => n.mac === request.mac))) {
              throw new VirtnodeError('CONFLICT', `NIC ${index}: MAC address ${request.mac} is already in use`, { field: 'mac', hint: 'two NICs with one MAC break both' });
            }
            nics.push(resolveNic(this.repo, this.networks, request, { index, mac: request.mac ?? this.uniqueMac(nics) }, `instance ${name}`, nics));
          }
          const uuid = options.uuid ?? newUuid();
          const holder = options.uuid === undefined ? undefined : this.repo.list().find((i) => i.uuid === uuid);
          if (holder !== undefined) throw new VirtnodeError('CONFLICT', `UUID ${uuid} is already instance ${holder.name}'s`, { field: 'uuid' });
          this.repo.insert({ name, uuid, smbiosUuid: newUuid(), type: options.type ?? 'vm', state: 'creating', stateReason: undefined, spec: draft, nics });
        });
        const networkNames = requests.map((r) => r.network);
        reverter.add('drop its address reservations', () => this.syncNetworks(networkNames));
        reverter.add('remove the instance record', () => this.repo.delete(name));
        await this.syncNetworks(networkNames);
        failpoint('create.after-record');
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { mode: 0o700 });
        reverter.add('remove the instance directory', () => rmSync(dir, { recursive: true, force: true }));
        failpoint('create.after-mkdir');
        const spec = await build(dir, reverter);
        failpoint('create.after-disk');
        this.repo.updateSpec(name, spec);
        this.repo.setState(name, 'defined');
        reverter.success();
        return this.mustGet(name);
      } catch (e) {
        await reverter.revert();
        throw named(e, `create instance ${name}`, this.paths.instances);
      }
    });
  }

  uniqueMac(pending: Nic[] = []): string {
    for (let attempt = 0; attempt < 100; attempt++) {
      const mac = newMac();
      if (!this.repo.macInUse(mac) && !pending.some((n) => n.mac === mac)) return mac;
    }
    throw new VirtnodeError('INTERNAL', 'could not find a free MAC address');
  }

  /** Two instances never write one disk. */
  assertDiskUnused(path: string): void {
    const user = this.repo.list().find((i) => i.spec.disks.some((d) => d.path === path && !d.readonly));
    if (user !== undefined) {
      throw new VirtnodeError('CONFLICT', `--disk: ${path} is already the disk of instance ${user.name}`, {
        field: '--disk',
        hint: 'two VMs writing one disk corrupt it; give each its own copy',
      });
    }
  }

  async start(name: string, options: OperationOptions & Pick<StartOptions, 'warm'> = {}): Promise<Instance> {
    return this.locked(name, 'start', options, async () => {
      const instance = await observeInstance(this.core, this.mustGet(name));
      const startable: InstanceState[] = ['defined', 'stopped', 'crashed'];
      if (!startable.includes(instance.state)) throw wrongState(instance, 'start', startable);
      await this.startLocked(instance, options);
      return this.mustGet(name);
    });
  }

  /** Starts a stopped instance; the caller holds its lock. */
  async startLocked(instance: Instance, options: OperationOptions & Pick<StartOptions, 'warm'>): Promise<void> {
    const driver = this.driver(instance);
    const signal = options.signal ? { signal: options.signal } : {};
    const start = await driver.prepareStart(instance, { ...signal, restrictUserNetwork: this.networks.hasWayOut(instance), ...(options.warm ? { warm: options.warm } : {}) });
    driver.clearRuntime(instance);
    const previous = instance.state;
    if (instance.spec.ssh !== undefined && instance.spec.ssh.address === undefined) instance = await this.prepareSshForward(instance);
    instance = this.recordRuntime(instance, start.runtime);
    // Before anything is changed: a disk another live instance writes (here or on another host) refuses the start.
    await claimDisks(this.core, instance, selfIdentity());
    this.repo.setState(instance.name, 'starting');
    try {
      await this.networks.prepareInstance(instance, { link: driver.capabilities.nicLink });
      failpoint('start.after-mark');
      let handOver: Promise<void> = Promise.resolve();
      await start.run(instance, {
        ...signal,
        onProcess: (process) => {
          failpoint('start.after-spawn');
          this.repo.setProcess(instance.name, process.pid, process.start);
          handOver = handOverDisks(this.core, instance, process);
          handOver.catch(() => {}); // awaited after the start; not unhandled meanwhile
        },
      });
      await handOver;
      failpoint('start.after-cont');
      this.repo.setState(instance.name, 'running', start.reason);
    } catch (e) {
      await this.networks.releaseInstance(instance).catch(() => {});
      await releaseDisks(this.core, instance).catch(() => {});
      driver.clearRuntime(instance);
      this.repo.setProcess(instance.name, undefined, undefined);
      this.repo.setState(instance.name, previous, `start failed: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    }
  }

  /** How this start runs the instance (its QEMU's accelerator, release, RAM padding), in its record before it runs. */
  private recordRuntime(instance: Instance, runtime: InstanceRuntime | undefined): Instance {
    const { runtime: _previous, ...rest } = instance.spec;
    const spec: InstanceSpec = runtime === undefined ? rest : { ...rest, runtime };
    this.repo.updateSpec(instance.name, spec);
    return { ...instance, spec };
  }

  /** A free loopback port for the guest's SSH, and the known_hosts entry that follows it. */
  private async prepareSshForward(instance: Instance): Promise<Instance> {
    const ssh = instance.spec.ssh!;
    // Free now, and not a port another instance forwards while stopped (it would claim it at its next start).
    const forwarded = new Set(this.repo.list().flatMap((i) => (i.spec.portForwards ?? []).map((f) => f.hostPort)));
    let hostPort = await freeLoopbackPort();
    for (let attempt = 0; attempt < 20 && forwarded.has(hostPort); attempt++) hostPort = await freeLoopbackPort();
    const spec: InstanceSpec = { ...instance.spec, ssh: { ...ssh, hostPort } };
    this.repo.updateSpec(instance.name, spec);
    await setHostKeys(this.paths.knownHosts, [`[127.0.0.1]:${hostPort}`], ssh.hostPublicKeys, { marker: instance.name });
    return { ...instance, spec };
  }

  async stop(name: string, options: StopOptions = {}): Promise<StopResult> {
    return this.locked(name, 'stop', options, async () => {
      const instance = await observeInstance(this.core, this.mustGet(name));
      const stoppable: InstanceState[] = ['running', 'paused'];
      if (!stoppable.includes(instance.state)) throw wrongState(instance, 'stop', stoppable);
      const method = await this.stopLocked(instance, options);
      return { instance: this.mustGet(name), method };
    });
  }

  /** Stops a running instance; the caller holds its lock (stop, restart, template create). */
  async stopLocked(instance: Instance, options: StopOptions): Promise<StopMethod> {
    const driver = this.driver(instance);
    this.repo.setState(instance.name, 'stopping');
    const method = await driver.stop(instance, { force: options.force ?? false, timeoutMs: options.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS });
    driver.clearRuntime(instance);
    await this.networks.releaseInstance(instance);
    await releaseDisks(this.core, instance);
    this.repo.setProcess(instance.name, undefined, undefined);
    const reasons = { acpi: 'guest powered off (ACPI shutdown)', forced: 'stopped by force', 'forced-after-timeout': 'forced off: the guest did not power off in time' };
    this.repo.setState(instance.name, 'stopped', reasons[method]);
    return method;
  }

  async restart(name: string, options: StopOptions = {}): Promise<Instance> {
    return this.locked(name, 'restart', options, async () => {
      const instance = await observeInstance(this.core, this.mustGet(name));
      const allowed: InstanceState[] = ['running', 'paused'];
      if (!allowed.includes(instance.state)) throw wrongState(instance, 'restart', allowed, 'use `virtnode start` for a stopped instance');
      await this.stopLocked(instance, options);
      await this.startLocked(this.mustGet(name), options);
      return this.mustGet(name);
    });
  }

  async pause(name: string, options: OperationOptions = {}): Promise<Instance> {
    return this.transition(name, 'pause', 'running', (driver, instance) => driver.pause(instance), 'paused', options);
  }

  async resume(name: string, options: OperationOptions = {}): Promise<Instance> {
    return this.transition(name, 'resume', 'paused', (driver, instance) => driver.resume(instance), 'running', options);
  }

  private async transition(
    name: string,
    operation: string,
    from: InstanceState,
    command: (driver: InstanceDriver, instance: Instance) => Promise<void>,
    to: InstanceState,
    options: OperationOptions,
  ): Promise<Instance> {
    return this.locked(name, operation, options, async () => {
      const instance = await observeInstance(this.core, this.mustGet(name));
      if (instance.state !== from) throw wrongState(instance, operation, [from]);
      await command(this.driver(instance), instance);
      this.repo.setState(name, to);
      return this.mustGet(name);
    });
  }

  async delete(name: string, options: OperationOptions & { force?: boolean } = {}): Promise<void> {
    await this.locked(name, 'delete', options, async () => {
      const instance = await observeInstance(this.core, this.mustGet(name));
      if (['running', 'paused'].includes(instance.state) && !options.force) {
        throw wrongState(instance, 'delete', ['defined', 'stopped', 'crashed'], `stop it first, or use --force to kill it`);
      }
      const overlaid = volumeOverlays(instance, this.paths.instanceDir(name));
      if (overlaid.length > 0) {
        throw new VirtnodeError('INVALID_STATE', `cannot delete ${name}: volume ${overlaid.join(', ')} holds its writes since an external snapshot in the instance's directory`, {
          hint: `merge them into the volume first: virtnode snapshot rm ${name} SNAP (see virtnode snapshot ls ${name})`,
        });
      }
      this.repo.setState(name, 'deleting');
      failpoint('delete.after-mark');
      await this.destroyLocked(instance);
    });
  }

  /** Kills any process of the instance, removes its directory and finally its record (used by delete and repair). */
  async destroyLocked(instance: Instance): Promise<void> {
    const driver = this.driver(instance);
    await driver.kill(instance);
    await this.networks.releaseInstance(instance);
    const dir = this.paths.instanceDir(instance.name);
    await driver.releaseStorage(dir);
    for (const disk of instance.spec.disks) {
      // Made in a pool by launch --pool (NAME.disk0.qcow2 there); nothing else an instance owns lies outside its directory.
      if (disk.owned && !disk.path.startsWith(`${dir}/`) && disk.path.endsWith(`/${instance.name}.disk0.qcow2`)) await removeFile(disk.path);
    }
    rmSync(dir, { recursive: true, force: true });
    if (instance.spec.ssh !== undefined) await removeHost(this.paths.knownHosts, instance.name);
    this.repo.delete(instance.name);
    await this.syncNetworks(instance.nics.map((n) => n.network));
  }

  /** Rewrites the DHCP reservations and DNS records of these managed networks (after NICs came or went). */
  async syncNetworks(names: string[]): Promise<void> {
    await this.networks.syncReservationsOf(names);
  }

  /** Keeps the last readiness verdict (cloud-init's result) with the instance, for `info`. */
  recordReadiness(name: string, phase: string, detail: string): void {
    const instance = this.repo.get(name);
    if (instance === undefined) return;
    this.repo.updateSpec(name, { ...instance.spec, readiness: { phase, detail, at: new Date().toISOString() } });
  }
}
