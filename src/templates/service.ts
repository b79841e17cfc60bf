import { assertNoSnapshots } from '../storage/snapshot-guard.ts';
import { createHash } from 'node:crypto';
import { createReadStream, chmodSync, linkSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { backingChain, chainInside } from '../storage/backing.ts';
import type { CoreContext } from '../core/context.ts';
import { VirtnodeError, invalid } from '../lib/errors.ts';
import { failpoint } from '../lib/failpoint.ts';
import { validateName } from '../lib/names.ts';
import type { DiskFormat, DiskSpec, Instance, InstanceState } from '../instances/model.ts';
import { observeInstance } from '../instances/observe.ts';
import { runtimePaths } from '../instances/runtime.ts';
import { InstanceService } from '../instances/service.ts';
import { notOffered } from '../instances/driver.ts';
import { driverFor } from '../instances/drivers/index.ts';
import { ensureLayer } from '../instances/drivers/lxc/layer.ts';
import { archiveUpper, IDENTITY_PATHS } from '../instances/drivers/lxc/upper.ts';
import { imageInfo } from '../qemu/img.ts';
import { transaction } from '../store/db.ts';
import { acquireLock } from '../store/locks.ts';
import type { Template } from './model.ts';
import { CONTAINER_TEMPLATE_FILE, TEMPLATE_DISK_FILE, templateDir, templatesDir } from './paths.ts';
import type { TemplateRepository } from '../store/templates.ts';
import { type SealResult, sealOffline, sealThroughAgent } from './seal.ts';
import { captureWarmState } from './warm-capture.ts';

const LOCK_WAIT_MS = 10_000;
const STOP_TIMEOUT_MS = 120_000;
const OFFLINE: InstanceState[] = ['defined', 'stopped', 'crashed'];
const ONLINE: InstanceState[] = ['running', 'paused'];

export interface CreateTemplateOptions {
  signal?: AbortSignal;
  onPhase?: (phase: 'stop' | 'seal' | 'store' | 'warm', detail: string) => void;
  /** Also keep a memory state of the template booted to just before its first boot, for warm launches. */
  warm?: boolean;
}

export interface CreateTemplateResult {
  template: Template;
  seal: SealResult;
}

export async function sha256OfFile(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash, signal === undefined ? {} : { signal });
  return hash.digest('hex');
}

function notATemplate(name: string): VirtnodeError {
  return new VirtnodeError('NOT_FOUND', `template ${name} does not exist`, { hint: 'see `virtnode template ls`' });
}

/** The stored disk of a new template, as its record names it. */
interface StoredDisk {
  diskPath: string;
  format: Template['format'];
  virtualSize: number;
  sha256: string;
}

/** A new template's record: its stored disk, how it was sealed, and what launches and clones of it start from (its source's settings). */
function templateRecord(name: string, instance: Instance, seal: SealResult, disk: StoredDisk): Omit<Template, 'createdAt'> {
  const { spec } = instance;
  return {
    name,
    ...disk,
    source: instance.name,
    ...(spec.image === undefined ? {} : { image: spec.image }),
    defaults: {
      cpus: spec.cpus,
      memoryMiB: spec.memoryMiB,
      accel: spec.accel,
      ...(spec.boot === undefined ? {} : { boot: spec.boot }),
      ...(spec.tuning === undefined ? {} : { tuning: spec.tuning }),
      ...(spec.ssh === undefined ? {} : { user: spec.ssh.user }),
      networks: instance.nics.map((n) => n.network),
      ...(spec.container === undefined ? {} : { container: spec.container }),
    },
    sealMethod: seal.method,
    sealReport: [seal.summary, ...seal.changes],
  };
}

/** Templates: sealed, read-only disks that clones and launches sit on. */
export class TemplateService {
  readonly core: CoreContext;
  readonly repo: TemplateRepository;
  /** The instance lifecycle: making a template stops its source and finally removes it. */
  private readonly instances: InstanceService;

  constructor(core: CoreContext) {
    this.core = core;
    this.repo = core.repos.templates;
    this.instances = new InstanceService(core);
  }

  async list(): Promise<Template[]> {
    await this.core.ensureReconciled();
    return this.repo.list();
  }

  async get(name: string): Promise<Template> {
    await this.core.ensureReconciled();
    const template = this.repo.get(validateName('NAME', name));
    if (template === undefined) throw notATemplate(name);
    return template;
  }

  /**
   * The instances whose disks sit on the template's disk (directly, or through bases of linked clones), and those
   * being launched from it (their draft names it before their disk exists).
   */
  dependents(template: Template): string[] {
    return this.core.repos.instances
      .list()
      .filter((i) => i.spec.image?.path === template.diskPath || i.spec.disks.some((d) => d.path === template.diskPath || backingChain(d.path).includes(template.diskPath)))
      .map((i) => i.name);
  }

  /** Recomputes the disk's checksum: a template's disk is never written again. */
  async verify(name: string, signal?: AbortSignal): Promise<{ template: Template; sha256: string; unchanged: boolean }> {
    const template = await this.get(name);
    const sha256 = await sha256OfFile(template.diskPath, signal);
    return { template, sha256, unchanged: sha256 === template.sha256 };
  }

  /**
   * The names of a `create` and the source's disk, checked before anything is done (so a refusal comes before the
   * operation starts); `create` checks the disk again under the lock.
   */
  async checkCreate(instanceName: string, templateName: string | undefined): Promise<{ source: string; name: string }> {
    const source = validateName('INSTANCE', instanceName);
    const name = validateName('NAME', templateName ?? source);
    await this.core.ensureReconciled();
    if (this.repo.get(name) !== undefined) throw new VirtnodeError('CONFLICT', `NAME: template ${name} already exists`, { field: 'NAME', hint: 'choose another name, or remove it first (virtnode template rm)' });
    if (name !== source && this.core.repos.instances.get(name) !== undefined) {
      throw new VirtnodeError('CONFLICT', `NAME: ${name} is the name of an instance`, { field: 'NAME', hint: 'templates and instances share one namespace: choose another name' });
    }
    const recorded = this.core.repos.instances.get(source);
    if (recorded === undefined) {
      throw new VirtnodeError('NOT_FOUND', `instance ${source} does not exist`, { hint: 'see `virtnode list` for the instances there are' });
    }
    if (recorded.spec.container !== undefined) assertNoSnapshots(this.core.db, source, 'make a template of');
    else this.templateDisk(recorded);
    return { source, name };
  }

  /** The disk a template is made of: a qcow2 disk virtnode made, on no snapshots (they would stay behind). */
  private templateDisk(instance: Instance): DiskSpec {
    const source = instance.name;
    const disk = instance.spec.disks[0];
    if (disk === undefined || !disk.owned || disk.format !== 'qcow2') {
      throw invalid('INSTANCE', `${source} has no qcow2 disk made by virtnode`, 'a template is made of a launched, cloned or `create --disk-size` instance');
    }
    if (chainInside(disk.path, this.core.paths.instanceDir(source)).length > 0) {
      throw invalid('INSTANCE', `the disk of ${source} sits on external snapshots in its own directory`, `delete (merge) its snapshots first: virtnode snapshot ls ${source}`);
    }
    assertNoSnapshots(this.core.db, source, 'make a template of');
    return disk;
  }

  /**
   * Turns an instance into a template: stops it, seals its disk (through the guest agent while it runs, else
   * offline in the sealing appliance), moves the disk to `<state>/templates/NAME/` read-only and removes the
   * instance. Crash-safe: until the template is recorded the instance is intact (its disk at worst sealed), and
   * a template directory with no record is removed by reconciliation; once it is recorded, the instance is in
   * `deleting`, which reconciliation finishes.
   */
  async create(instanceName: string, templateName: string | undefined, options: CreateTemplateOptions = {}): Promise<CreateTemplateResult> {
    const { source, name } = await this.checkCreate(instanceName, templateName);
    const signal = options.signal === undefined ? {} : { signal: options.signal };
    const releases: Array<() => void> = [];
    try {
      releases.push(await acquireLock(this.core.db, source, 'template create', { waitMs: LOCK_WAIT_MS, ...signal }));
      if (name !== source) releases.push(await acquireLock(this.core.db, name, 'template create', { waitMs: 0 }));
      const recorded = this.core.repos.instances.get(source);
      if (recorded === undefined) throw new VirtnodeError('NOT_FOUND', `instance ${source} does not exist`);
      const driver = driverFor(this.core.paths, recorded);
      if (!driver.capabilities.clones) notOffered(recorded, driver, 'become a template');
      const instance = await observeInstance(this.core, recorded);
      if (!OFFLINE.includes(instance.state) && !ONLINE.includes(instance.state)) {
        throw new VirtnodeError('INVALID_STATE', `cannot make a template of ${source}: it is ${instance.state}`, { hint: 'wait for the operation under way to finish' });
      }
      if (driver.capabilities.storage === 'upper-dir') return await this.storeContainer(instance, name, options);
      const disk = this.templateDisk(instance);
      const seal = await this.stopAndSeal(instance, disk, options);
      failpoint('template.after-seal');
      options.onPhase?.('seal', seal.summary);
      let template = await this.store(instance, name, seal, options);
      if (options.warm === true) {
        const warm = await captureWarmState(this.core, template, { ...signal, onPhase: (detail) => options.onPhase?.('warm', detail) }).catch((e: unknown) => {
          throw new VirtnodeError('COMMAND_FAILED', `template ${name} was made, but not its warm state: ${e instanceof Error ? e.message : String(e)}`, {
            cause: e,
            hint: 'its cold launches work; see the template directory\'s warm/qemu.log',
          });
        });
        this.repo.setWarm(name, warm);
        template = this.repo.get(name)!;
      }
      return { template, seal };
    } finally {
      for (const release of releases.reverse()) release();
    }
  }

  private async stopAndSeal(instance: Instance, disk: { path: string; format: DiskFormat }, options: CreateTemplateOptions): Promise<SealResult> {
    const signal = options.signal === undefined ? {} : { signal: options.signal };
    let note = '';
    if (ONLINE.includes(instance.state)) {
      const live = instance.state === 'running' ? await sealThroughAgent(runtimePaths(this.core.paths.instanceDir(instance.name)).guestAgent, signal) : undefined;
      const method = await this.instances.stopLocked(instance, { timeoutMs: STOP_TIMEOUT_MS });
      options.onPhase?.('stop', `${instance.name} stopped (${method})`);
      if (live !== undefined) return live;
      note = instance.state === 'running' ? ' (no guest agent answered)' : ' (it was paused)';
    }
    const offline = await sealOffline(this.core.paths, disk, signal);
    return { ...offline, summary: `${offline.summary}${note}` };
  }

  private async store(instance: Instance, name: string, seal: SealResult, options: CreateTemplateOptions): Promise<Template> {
    const disk = instance.spec.disks[0]!;
    const diskPath = join(this.freshTemplateDir(name), TEMPLATE_DISK_FILE);
    // A hard link: the same file, so nothing is copied, and the instance's disk stays whole until it is removed.
    linkSync(disk.path, diskPath);
    chmodSync(diskPath, 0o444);
    failpoint('template.after-link');
    const [sha256, info] = await Promise.all([this.checksumStored(diskPath, options), imageInfo(diskPath, { format: disk.format })]);
    return this.recordConsuming(templateRecord(name, instance, seal, { diskPath, format: 'qcow2', virtualSize: info.virtualSize, sha256 }), instance);
  }

  /**
   * A container's template: the container stopped, its upper directory archived without its identity files
   * (upper.tar, read-only, checksummed like a disk), then the container removed. Clones unpack the tar onto the
   * same shared lower tree.
   */
  private async storeContainer(instance: Instance, name: string, options: CreateTemplateOptions): Promise<CreateTemplateResult> {
    if (ONLINE.includes(instance.state)) {
      const method = await this.instances.stopLocked(instance, { timeoutMs: STOP_TIMEOUT_MS });
      options.onPhase?.('stop', `${instance.name} stopped (${method})`);
    }
    const diskPath = join(this.freshTemplateDir(name), CONTAINER_TEMPLATE_FILE);
    const { upper } = await ensureLayer(this.core.paths.instanceDir(instance.name), instance.spec.container!);
    await archiveUpper(upper, diskPath, options.signal === undefined ? {} : { signal: options.signal });
    chmodSync(diskPath, 0o444);
    const seal: SealResult = {
      method: 'offline',
      root: upper,
      changes: [...IDENTITY_PATHS, 'etc/ssh/ssh_host_*', 'etc/systemd/network/10-cloud-init-*'].map((p) => `left out /${p}`),
      summary: `archived the upper directory of ${instance.name} without its identity (machine-id, host keys, cloud-init state, leases)`,
    };
    options.onPhase?.('seal', seal.summary);
    const sha256 = await this.checksumStored(diskPath, options);
    const template = templateRecord(name, instance, seal, { diskPath, format: 'raw', virtualSize: statSync(diskPath).size, sha256 });
    return { template: await this.recordConsuming(template, instance), seal };
  }

  /** The template's directory, new and empty (whatever an interrupted create left there is gone). */
  private freshTemplateDir(name: string): string {
    const dir = templateDir(this.core.paths, name);
    mkdirSync(templatesDir(this.core.paths), { recursive: true, mode: 0o700 });
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { mode: 0o700 });
    failpoint('template.after-mkdir');
    return dir;
  }

  /** The stored disk's sha256, reported as the `store` phase. */
  private async checksumStored(diskPath: string, options: CreateTemplateOptions): Promise<string> {
    const sha256 = await sha256OfFile(diskPath, options.signal);
    options.onPhase?.('store', `${diskPath} (sha256 ${sha256.slice(0, 16)}…)`);
    return sha256;
  }

  /** Records the template and consumes the instance it was made from: one transaction, then the instance's removal. */
  private async recordConsuming(template: Omit<Template, 'createdAt'>, instance: Instance): Promise<Template> {
    transaction(this.core.db, () => {
      this.repo.insert(template);
      this.core.repos.instances.setState(instance.name, 'deleting', `became template ${template.name}`);
    });
    failpoint('template.after-record');
    await this.instances.destroyLocked(this.core.repos.instances.get(instance.name)!);
    return this.repo.get(template.name)!;
  }

  /** Removes a template, refused while instances sit on its disk. */
  async remove(name: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    validateName('NAME', name);
    await this.core.ensureReconciled();
    if (this.repo.get(name) === undefined) throw notATemplate(name);
    const release = await acquireLock(this.core.db, name, 'template rm', { waitMs: LOCK_WAIT_MS, ...(options.signal ? { signal: options.signal } : {}) });
    try {
      const template = this.repo.get(name);
      if (template === undefined) throw notATemplate(name);
      const users = this.dependents(template);
      if (users.length > 0) {
        throw new VirtnodeError('CONFLICT', `template ${name} is the base of ${users.length} instance${users.length === 1 ? '' : 's'}: ${users.join(', ')}`, {
          hint: `their disks are overlays on it: delete them first (virtnode delete ${users[0]})`,
        });
      }
      this.repo.delete(name);
      rmSync(templateDir(this.core.paths, name), { recursive: true, force: true });
    } finally {
      release();
    }
  }
}
