import { join } from 'node:path';
import { ClusterService } from '../cluster/service.ts';
import { hostPublication } from './cluster-publication.ts';
import type { InstanceService } from '../instances/service.ts';
import type { StatePaths } from '../lib/paths.ts';
import type { StorageService } from '../storage/service.ts';

/** The core's ClusterService: STATE/cluster, publishing this host's capacity and use; `serving` in the daemon. */
export function clusterService(app: { paths: StatePaths; instances: InstanceService; storage: () => Promise<StorageService> }, serving: boolean): ClusterService {
  return new ClusterService({
    dir: join(app.paths.root, 'cluster'),
    serving,
    publication: hostPublication(app.instances, () => app.storage(), app.paths.hostCache),
    log: (level, message, fields) => {
      if (serving || level !== 'info') process.stderr.write(`${JSON.stringify({ level, msg: message, component: 'cluster', ...fields })}\n`);
    },
  });
}
