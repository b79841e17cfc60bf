import { join } from 'node:path';
import { ClusterService } from '../cluster/service.ts';
import { hostPublication } from './cluster-publication.ts';
import type { AppCore } from './context.ts';
import { IMAGE_FETCH_PEER_PATH, fetchProgressPeerRoute } from './image-fetch-progress.ts';
import { IMAGES_PEER_PREFIX, imagesFileRoute, publishHeldImages } from './images-cluster.ts';
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
    started: () => void publishHeldImages(app),
    publication: hostPublication(app.instances, () => app.storage(), app.paths.hostCache),
    log: (level, message, fields) => {
      if (serving || level !== 'info') process.stderr.write(`${JSON.stringify({ level, msg: message, component: 'cluster', ...fields })}\n`);
    },
  });
  let here: ReturnType<typeof ownedHere> | undefined;
  service.route(INSTANCES_PEER_PATH, instancesPeerRoute(() => (here ??= ownedHere(app, localInstances(app)))));
  service.route(MOVES_PEER_PATH, movesPeerRoute(app, () => service));
  service.fileRoute(IMAGES_PEER_PREFIX, imagesFileRoute(app));
  service.route(IMAGE_FETCH_PEER_PATH, fetchProgressPeerRoute());
  return service;
}
