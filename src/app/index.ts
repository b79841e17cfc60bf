/** The application layer: one implementation per resource of the API (src/api/contracts/index.ts). */
import type { ApiTables } from '../api/contracts/index.ts';
import { apply } from './apply/resource.ts';
import { cluster } from './cluster.ts';
import { host } from './host.ts';
import { images } from './images.ts';
import { instances } from './instances.ts';
import { interop } from './interop.ts';
import { networks } from './networks.ts';
import { nics } from './nics.ts';
import { operations } from './operations-resource.ts';
import { ports } from './ports.ts';
import type { Resource } from './resource.ts';
import { storageResources } from './storage.ts';
import { templates } from './templates.ts';

export const RESOURCES: { [K in keyof ApiTables]: Resource<ApiTables[K]> } = {
  instances,
  networks,
  nics,
  ports,
  templates,
  operations,
  host,
  images,
  ...storageResources,
  interop,
  apply,
  cluster,
};
