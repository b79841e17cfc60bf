/**
 * Each resource of the application layer, loaded when first called. The CLI without a daemon (src/app/local.ts)
 * then loads the one resource its command calls, not the whole layer as the daemon does (src/app/index.ts):
 * every CLI call pays for what it loads.
 */
import type { ApiTables } from '../api/contracts/index.ts';
import type { Resource } from './resource.ts';

export const RESOURCE_LOADERS: { [K in keyof ApiTables]: () => Promise<Resource<ApiTables[K]>> } = {
  instances: async () => (await import('./instances.ts')).instances,
  networks: async () => (await import('./networks.ts')).networks,
  nics: async () => (await import('./nics.ts')).nics,
  ports: async () => (await import('./ports.ts')).ports,
  templates: async () => (await import('./templates.ts')).templates,
  operations: async () => (await import('./operations-resource.ts')).operations,
  host: async () => (await import('./host.ts')).host,
  images: async () => (await import('./images.ts')).images,
  pools: async () => (await import('./storage.ts')).storageResources.pools,
  volumes: async () => (await import('./storage.ts')).storageResources.volumes,
  disks: async () => (await import('./storage.ts')).storageResources.disks,
  snapshots: async () => (await import('./storage.ts')).storageResources.snapshots,
  interop: async () => (await import('./interop.ts')).interop,
  apply: async () => (await import('./apply/resource.ts')).apply,
  cluster: async () => (await import('./cluster.ts')).cluster,
};
