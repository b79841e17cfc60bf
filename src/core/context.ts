import { mkdirSync } from 'node:fs';
import { type HostLimits, hostLimits } from '../host/limits.ts';
import type { StatePaths } from '../lib/paths.ts';
import { NetworkService } from '../network/service.ts';
import { type Db, openDb } from '../store/db.ts';
import { InstanceRepository } from '../store/instances.ts';
import type { DiskOwnership } from '../store/disk-ownership.ts';
import { acquireLock } from '../store/locks.ts';
import { PolicyRepository } from '../store/policies.ts';
import { StorageRepository } from '../store/storage.ts';
import { TemplateRepository } from '../store/templates.ts';

/** How long an operation waits, by default, for another one on the same lock to finish. */
export const LOCK_WAIT_MS = 120_000;

export interface LockOptions {
  signal?: AbortSignal;
  /** How long to wait for another operation on the same instance to finish. */
  lockWaitMs?: number;
}

export interface Repositories {
  instances: InstanceRepository;
  templates: TemplateRepository;
  storage: StorageRepository;
  policies: PolicyRepository;
}

/**
 * What the core's services share, built once per process over one state directory: paths, the database and its
 * repositories, the managed networks, the host's limits, per-instance locks and the reconcile gate.
 */
export interface CoreContext {
  readonly paths: StatePaths;
  readonly db: Db;
  readonly repos: Repositories;
  readonly networks: NetworkService;
  readonly limits: HostLimits;
  /** Repairs what a crashed virtnode process left behind, once per process; every entry point calls it. */
  ensureReconciled(): Promise<void>;
  /**
   * Runs `fn` holding the lock `name` (an instance's name, or a named resource such as `volume/NAME`), after
   * reconciling once. Operations on one instance are serialized; different instances proceed in parallel.
   */
  withLock<T>(name: string, operation: string, options: LockOptions, fn: () => Promise<T>): Promise<T>;
  /** One writer per disk; undefined: this host's local guard (src/instances/disk-claims.ts). A cluster sets its own. */
  diskOwnership?: DiskOwnership;
}

export interface CoreOptions {
  /**
   * The repair run by `ensureReconciled`: it spans instances, storage and templates, so it lives above them
   * (src/app/reconcile.ts) and is handed in here.
   */
  reconcile: (core: CoreContext) => Promise<unknown>;
  /** An open database of this state directory (default: open `paths.db`). */
  db?: Db;
  limits?: HostLimits;
}

export function createCoreContext(paths: StatePaths, options: CoreOptions): CoreContext {
  const db = options.db ?? openDb(paths.db);
  mkdirSync(paths.instances, { recursive: true, mode: 0o700 });
  let reconciled = false;
  const core: CoreContext = {
    paths,
    db,
    repos: {
      instances: new InstanceRepository(db),
      templates: new TemplateRepository(db),
      storage: new StorageRepository(db),
      policies: new PolicyRepository(db),
    },
    networks: new NetworkService(paths, db),
    limits: options.limits ?? hostLimits(),
    async ensureReconciled() {
      if (reconciled) return;
      // Set before the repair runs: it is tried once per process, even when it fails.
      reconciled = true;
      await options.reconcile(core);
    },
    async withLock(name, operation, lockOptions, fn) {
      await core.ensureReconciled();
      const release = await acquireLock(db, name, operation, {
        waitMs: lockOptions.lockWaitMs ?? LOCK_WAIT_MS,
        ...(lockOptions.signal === undefined ? {} : { signal: lockOptions.signal }),
      });
      try {
        return await fn();
      } finally {
        release();
      }
    },
  };
  return core;
}
