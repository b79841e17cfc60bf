import { join } from 'node:path';
import { EtcdDiskOwnership, SplitDiskOwnership } from '../cluster/disk-ownership-etcd.ts';
import { ClusterService } from '../cluster/service.ts';
import { diskOwnership } from '../instances/disk-claims.ts';
import { hostPublication } from './cluster-publication.ts';
import type { AppCore } from './context.ts';
import { INSTANCES_PEER_PATH, instancesPeerRoute, ownedHere } from './instances-cluster.ts';
import { MOVES_PEER_PATH, movesPeerRoute } from './instances-move.ts';
import { localInstances } from './instances.ts';

/**
 * The core's ClusterService: STATE/cluster, publishing this host's capacity and use; `serving` in the daemon,
 * where other hosts reach this host's instances through its cluster API.
 */
export function clusterService(app: AppCore, serving: boolean): ClusterService {
  const service = new ClusterService({
    dir: join(app.paths.root, 'cluster'),
    serving,
    publication: hostPublication(app.instances, () => app.storage(), app.paths.hostCache),
    log: (level, message, fields) => {
      if (serving || level !== 'info') process.stderr.write(`${JSON.stringify({ level, msg: message, component: 'cluster', ...fields })}\n`);
    },
  });
  // Disks on shared pools: one writer cluster-wide, recorded in etcd before QEMU opens them (the others: this host's guard).
  const local = diskOwnership(app.core);
  let shared: { host: string; store: EtcdDiskOwnership } | undefined;
  app.core.diskOwnership = new SplitDiskOwnership(
    local,
    () => {
      const host = service.host;
      if (host === undefined) return undefined;
      if (shared?.host !== host) shared = { host, store: new EtcdDiskOwnership(() => service.kv(), host) };
      return shared.store;
    },
    (disk) => isSharedDisk(app, disk),
  );
  let here: ReturnType<typeof ownedHere> | undefined;
  service.route(INSTANCES_PEER_PATH, instancesPeerRoute(() => (here ??= ownedHere(app, localInstances(app)))));
  service.route(MOVES_PEER_PATH, movesPeerRoute(app, () => service));
  return service;
}

/** A disk on a shared pool: over nfs://, or a file in a shared-dir pool's directory (the same path on every host). */
export function isSharedDisk(app: AppCore, disk: string): boolean {
  if (disk.startsWith('nfs://')) return true;
  return app.core.repos.storage.pools().some((p) => p.type === 'shared-dir' && disk.startsWith(`${p.path.replace(/\/+$/, '')}/`));
}
