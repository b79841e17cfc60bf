/**
 * The core the application layer works on: built once per process (the daemon, or a CLI call without a daemon)
 * over the state directory, and shared by every resource's implementation.
 */
import { type CoreContext, createCoreContext } from '../core/context.ts';
import { ImageStore } from '../images/store/index.ts';
import { InstanceService } from '../instances/service.ts';
import type { StatePaths } from '../lib/paths.ts';
import type { Db } from '../store/db.ts';
import type { PolicyRepository } from '../store/policies.ts';
import type { StorageService } from '../storage/service.ts';
import { reconcile } from './reconcile.ts';
import type { OperationLog } from './operation-log.ts';
import { OperationTable } from './operation-table.ts';

export interface AppCore {
  /** What the core's services share (paths, database, repositories, locks, the reconcile gate). */
  core: CoreContext;
  paths: StatePaths;
  db: Db;
  instances: InstanceService;
  images: ImageStore;
  policies: PolicyRepository;
  /** The API's operations: the daemon's manager, which runs them; in a CLI process, the table it keeps. */
  operations: OperationLog;
  /** The directories a client over TCP may name paths under (`virtnode daemon --allow-path`), links resolved. */
  remotePaths: readonly string[];
  /** Clients over TCP may pull from loopback, link-local and private addresses (`--allow-private-pulls`). */
  allowPrivatePulls: boolean;
  /** The storage service (pools, volumes, disks, snapshots), made on first use. */
  storage(): Promise<StorageService>;
  /** This host's part in a cluster (standalone: no cluster.json, nothing runs); made on first use. */
  cluster(): Promise<import('../cluster/service.ts').ClusterService>;
  /**
   * Something changed that whoever watches the instances may act on (a start, a new restart policy): the daemon's
   * supervisor looks again. In a CLI process nothing watches. Returns its argument, for `return core.changed(view)`.
   */
  changed(): void;
  changed<T>(value: T): T;
}

export function createAppCore(
  paths: StatePaths,
  options: { db?: Db; changed?: () => void; clusterServing?: boolean; operations?: OperationLog; remotePaths?: readonly string[]; allowPrivatePulls?: boolean } = {},
): AppCore {
  const core = createCoreContext(paths, { reconcile, ...(options.db === undefined ? {} : { db: options.db }) });
  const db = core.db;
  const instances = new InstanceService(core);
  let storage: Promise<StorageService> | undefined;
  let cluster: Awaited<ReturnType<AppCore['cluster']>> | undefined;
  let clusterLoad: ReturnType<AppCore['cluster']> | undefined;
  const app: AppCore = {
    core,
    paths,
    db,
    instances,
    images: new ImageStore(paths, db),
    policies: core.repos.policies,
    operations: options.operations ?? new OperationTable(db),
    remotePaths: options.remotePaths ?? [],
    allowPrivatePulls: options.allowPrivatePulls ?? false,
    storage: () =>
      (storage ??= (async () => {
        const { StorageService } = await import('../storage/service.ts');
        const service = new StorageService(core);
        await instances.ensureReconciled();
        return service;
      })()),
    cluster: () => (clusterLoad ??= import('./cluster-service.ts').then((m) => (cluster = m.clusterService(app, options.clusterServing === true)))),
    changed: <T>(value?: T) => {
      options.changed?.();
      cluster?.changed();
      return value;
    },
  } as AppCore;
  return app;
}
