/**
 * Each command group's API for this CLI call, chosen once (src/cli/backend.ts): the daemon when one runs (or
 * --remote), else the core in this process. Both sides are imported only when first used, so a command loads
 * the code of its own group only.
 */
import type { HostApi } from '../client/host.ts';
import type { ImageApi } from '../client/images.ts';
import type { OperationApi } from '../client/operations.ts';
import { backendAccessor } from './backend.ts';

const stateDb = async () => {
  const [{ statePaths }, { openDb }] = await Promise.all([import('../lib/paths.ts'), import('../store/db.ts')]);
  const paths = statePaths();
  return { paths, db: openDb(paths.db) };
};

export const imageApi = backendAccessor<ImageApi>(
  async () => {
    const [{ LocalImages }, { ImageStore, instancesUsingImage }, { paths, db }] = await Promise.all([import('./local/images.ts'), import('../images/store/index.ts'), stateDb()]);
    return new LocalImages(new ImageStore(paths, db), instancesUsingImage(db));
  },
  async (client) => new (await import('../client/images.ts')).RemoteImages(client),
);

/** Without a daemon, operations (which run only in one) are read from its table. */
export const operationApi = backendAccessor<OperationApi>(
  async () => new (await import('./local/operations.ts')).LocalOperations((await stateDb()).db),
  async (client) => new (await import('../client/operations.ts')).RemoteOperations(client),
);

/** The host check: the daemon's host when one runs (or --remote), else this one. */
export const hostApi = backendAccessor<HostApi>(
  async () => new (await import('./local/host.ts')).LocalHost((await import('../lib/paths.ts')).statePaths().hostCache),
  async (client) => new (await import('../client/host.ts')).RemoteHost(client),
);
