import { join } from 'node:path';
import { EtcdDiskOwnership, SplitDiskOwnership } from '../cluster/disk-ownership-etcd.ts';
import { ClusterService } from '../cluster/service.ts';
import { diskOwnership } from '../instances/disk-claims.ts';
import { failoverLoop, fenceCandidates } from './cluster-failover.ts';
import { attachNetworkSpan, dropNetworkRolesOnFence, networksLoop } from './cluster-networks.ts';
import { hostPublication } from './cluster-publication.ts';
import { isSharedDisk } from './cluster-shared-disks.ts';
import type { AppCore } from './context.ts';
import { FORWARDED_JOBS_PEER_PATH, forwardedJobsPeerRoute } from './forwarded-jobs.ts';
import { IMAGES_PEER_PREFIX, imagesFileRoute, publishHeldImages } from './images-cluster.ts';
import { INSTANCES_PEER_PATH, instancesPeerRoute, ownedHere } from './instances-cluster.ts';
import { MOVES_PEER_PATH, movesPeerRoute } from './instances-move.ts';
import { IncomingMoves } from './move-arrivals.ts';
import { moveSettleLoop } from './move-settle-loop.ts';
import { MOVE_DISKS_PEER_PREFIX, OFFLINE_MOVES_PEER_PATH, moveDisksFileRoute, offlineMovesPeerRoute } from './instances-move-offline.ts';
import { localInstances } from './instances.ts';
import { NETWORK_LEASES_PEER_PATH, networkLeasesPeerRoute } from './networks.ts';

/**
 * The core's ClusterService: STATE/cluster, publishing this host's capacity and use; `serving` in the daemon,
 * where other hosts reach this host's instances through its cluster API.
 */
export function clusterService(app: AppCore, serving: boolean): ClusterService {
  let failover: ReturnType<typeof failoverLoop> | undefined;
  // The live moves coming here: their steps (the route) and their adoption when the source does not come back.
  const incomingMoves = new IncomingMoves();
  const service: ClusterService = new ClusterService({
    dir: join(app.paths.root, 'cluster'),
    serving,
    started: () => void publishHeldImages(app),
    publication: hostPublication(app.instances, () => app.storage(), app.paths.hostCache),
    onFenced: (reason) => {
      fenceCandidates(app, service, reason);
      dropNetworkRolesOnFence(app, service);
    },
    background: () => {
      const loop = failoverLoop(app, service);
      const networks = networksLoop(app, service);
      const moves = moveSettleLoop(app, service, incomingMoves);
      failover = loop;
      return {
        stop: async () => {
          failover = undefined;
          await Promise.all([loop.stop(), networks.stop(), moves.stop()]);
        },
      };
    },
    onChanged: () => failover?.poke(),
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
      if (shared?.host !== host) shared = { host, store: new EtcdDiskOwnership(() => service.localKv(), host) };
      return shared.store;
    },
    (disk) => isSharedDisk(app, disk),
  );
  // Networks defined cluster-wide (standalone until this host is in a cluster: the span answers no `self`).
  attachNetworkSpan(app, service);
  let here: ReturnType<typeof ownedHere> | undefined;
  service.route(NETWORK_LEASES_PEER_PATH, networkLeasesPeerRoute(app));
  service.route(INSTANCES_PEER_PATH, instancesPeerRoute(() => (here ??= ownedHere(app, localInstances(app)))));
  service.route(MOVES_PEER_PATH, movesPeerRoute(app, () => service, incomingMoves));
  service.route(OFFLINE_MOVES_PEER_PATH, offlineMovesPeerRoute(app, () => service));
  service.fileRoute(MOVE_DISKS_PEER_PREFIX, moveDisksFileRoute());
  service.fileRoute(IMAGES_PEER_PREFIX, imagesFileRoute(app));
  service.route(FORWARDED_JOBS_PEER_PATH, forwardedJobsPeerRoute());
  return service;
}
