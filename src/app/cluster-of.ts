import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterService } from '../cluster/service.ts';
import type { AppCore } from './context.ts';

/** The cluster this host is in, or undefined (standalone: the cluster code is not even loaded). */
export async function clusterOf(core: AppCore): Promise<ClusterService | undefined> {
  if (!existsSync(join(core.paths.root, 'cluster', 'cluster.json'))) return undefined;
  const c = await core.cluster();
  return c.config === undefined ? undefined : c;
}
