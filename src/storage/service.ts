import { VirtnodeError } from '../lib/errors.ts';
import type { Instance } from '../instances/model.ts';
import { observeInstance } from '../instances/observe.ts';
import { runtimePaths } from '../instances/runtime.ts';
import type { InstanceService, OperationOptions } from '../instances/service.ts';
import { QmpConnection } from '../qmp/connection.ts';
import { acquireLock } from '../store/locks.ts';
import { StorageRepository } from '../store/storage.ts';

const QMP_CONNECT_TIMEOUT_MS = 5_000;

/**
 * Pools, volumes, disks and snapshots over one state directory. Per-instance storage operations take the
 * instance's lock (through the instance service); per-volume ones a lock named `volume/NAME`.
 */
export class StorageService {
  readonly instances: InstanceService;
  readonly repo: StorageRepository;

  constructor(instances: InstanceService) {
    this.instances = instances;
    this.repo = new StorageRepository(instances.db);
  }

  get paths() {
    return this.instances.paths;
  }

  /** Runs `fn` under a volume's lock (volumes not attached to anything). */
  async withVolumeLock<T>(name: string, operation: string, options: OperationOptions, fn: () => Promise<T>): Promise<T> {
    await this.instances.ensureReconciled();
    const release = await acquireLock(this.instances.db, `volume/${name}`, operation, {
      waitMs: options.lockWaitMs ?? 60_000,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** The instance, observed (a QEMU that died shows as crashed), or NOT_FOUND. */
  async instance(name: string): Promise<Instance> {
    const found = this.instances.repo.get(name);
    if (found === undefined) {
      throw new VirtnodeError('NOT_FOUND', `instance ${name} does not exist`, { hint: 'see `virtnode list` for the instances there are' });
    }
    return observeInstance(this.instances, found);
  }

  /** The instance holding a volume as one of its disks, if any. */
  attachedTo(volumeName: string): Instance | undefined {
    return this.instances.repo.list().find((i) => i.spec.disks.some((d) => d.volume === volumeName));
  }

  /** A QMP connection to the instance's operations monitor; the caller holds the instance lock and closes it. */
  async qmp(instance: Instance): Promise<QmpConnection> {
    return QmpConnection.connect(runtimePaths(this.paths.instanceDir(instance.name)).qmp, { timeoutMs: QMP_CONNECT_TIMEOUT_MS });
  }

  async withQmp<T>(instance: Instance, fn: (qmp: QmpConnection) => Promise<T>): Promise<T> {
    const qmp = await this.qmp(instance);
    try {
      return await fn(qmp);
    } finally {
      qmp.close();
    }
  }
}

export function isLive(instance: Instance): boolean {
  return instance.state === 'running' || instance.state === 'paused';
}
