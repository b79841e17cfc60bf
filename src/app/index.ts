/** The application layer: one implementation per resource of the API (src/api/contracts/index.ts). */
import type { ApiTables } from '../api/contracts/index.ts';
import { host } from './host.ts';
import { images } from './images.ts';
import { instances } from './instances.ts';
import { operations } from './operations-resource.ts';
import type { Resource } from './resource.ts';

export const RESOURCES: { [K in keyof ApiTables]: Resource<ApiTables[K]> } = {
  instances,
  operations,
  host,
  images,
};
