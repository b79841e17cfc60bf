/**
 * The core the application layer works on: built once per process (the daemon, or a CLI call without a daemon)
 * over the state directory, and shared by every resource's implementation.
 */
import type { CoreContext } from '../core/context.ts';
import type { ImageStore } from '../images/store/index.ts';
import type { InstanceService } from '../instances/service.ts';
import type { StatePaths } from '../lib/paths.ts';
import type { Db } from '../store/db.ts';
import type { PolicyRepository } from '../store/policies.ts';
import type { StorageService } from '../storage/service.ts';
import type { OperationLog } from './operation-log.ts';

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
