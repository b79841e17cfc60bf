import type { CoreContext } from '../core/context.ts';
import { VirtnodeError } from '../lib/errors.ts';
import type { StatePaths } from '../lib/paths.ts';
import type { Instance } from '../instances/model.ts';
import { observeInstance } from '../instances/observe.ts';
import { runtimePaths } from '../instances/runtime.ts';
import { InstanceService, type OperationOptions } from '../instances/service.ts';
import type { QmpConnection } from '../qmp/connection.ts';
import { connectMonitor, explainSilence } from '../instances/monitor.ts';
import type { StorageRepository } from '../store/storage.ts';

const QMP_CONNECT_TIMEOUT_MS = 5_000;
const VOLUME_LOCK_WAIT_MS = 60_000;

/**
 * Pools, volumes, disks and snapshots over one state directory. Per-instance storage operations take the
 * instance's lock; per-volume ones a lock named `volume/NAME`. `instances` is the instance lifecycle over the same
 * core (a snapshot revert stops and starts the guest).
 */
export class StorageService {
  readonly core: CoreContext;
  readonly instances: InstanceService;
  readonly repo: StorageRepository;

  constructor(core: CoreContext) {
    this.core = core;
    this.instances = new InstanceService(core);
    this.repo = core.repos.storage;
  }

  get paths(): StatePaths {
    return this.core.paths;
  }

  /** Runs `fn` under a volume's lock (volumes not attached to anything). */
  async withVolumeLock<T>(name: string, operation: string, options: OperationOptions, fn: () => Promise<T>): Promise<T> {
    return this.core.withLock(`volume/${name}`, operation, { ...options, lockWaitMs: options.lockWaitMs ?? VOLUME_LOCK_WAIT_MS }, fn);
  }

  /** The instance, observed (a QEMU that died shows as crashed), or NOT_FOUND. */
  async instance(name: string): Promise<Instance> {
    const found = this.core.repos.instances.get(name);
    if (found === undefined) {
      throw new VirtnodeError('NOT_FOUND', `instance ${name} does not exist`, { hint: 'see `virtnode list` for the instances there are' });
    }
    return observeInstance(this.core, found);
  }

  /** The instance holding a volume as one of its disks, if any. */
  attachedTo(volumeName: string): Instance | undefined {
    return this.core.repos.instances.list().find((i) => i.spec.disks.some((d) => d.volume === volumeName));
  }

  /** A QMP connection to the instance's operations monitor; the caller holds the instance lock and closes it. */
  async qmp(instance: Instance): Promise<QmpConnection> {
    return connectMonitor(runtimePaths(this.paths.instanceDir(instance.name)).qmp, instance, QMP_CONNECT_TIMEOUT_MS);
  }

  async withQmp<T>(instance: Instance, fn: (qmp: QmpConnection) => Promise<T>): Promise<T> {
    const qmp = await this.qmp(instance);
    try {
      return await fn(qmp);
    } catch (e) {
      throw explainSilence(e, instance);
    } finally {
      qmp.close();
    }
  }
}

export function isLive(instance: Instance): boolean {
  return instance.state === 'running' || instance.state === 'paused';
}
