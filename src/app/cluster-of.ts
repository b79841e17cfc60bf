import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterService } from '../cluster/service.ts';
import type { AppCore } from './context.ts';

/** Whether the state directory at `root` belongs to a cluster (a stat: cheap enough for every request). */
export function inCluster(root: string): boolean {
  return existsSync(join(root, 'cluster', 'cluster.json'));
}

/** The cluster this host is in, or undefined (standalone: the cluster code is not even loaded). */
export async function clusterOf(core: AppCore): Promise<ClusterService | undefined> {
  if (!inCluster(core.paths.root)) return undefined;
  const c = await core.cluster();
  return c.config === undefined ? undefined : c;
}
