/**
 * Builds the application layer's core for one process. Apart from context.ts (the AppCore type every resource
 * imports) because it loads the cluster service, which itself works on an AppCore.
 */
import { createCoreContext } from '../core/context.ts';
import { ImageStore } from '../images/store/index.ts';
import { InstanceService } from '../instances/service.ts';
import type { StatePaths } from '../lib/paths.ts';
import type { Db } from '../store/db.ts';
import type { StorageService } from '../storage/service.ts';
import type { AppCore } from './context.ts';
import type { OperationLog } from './operation-log.ts';
import { OperationTable } from './operation-table.ts';
import { reconcile } from './reconcile.ts';

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
