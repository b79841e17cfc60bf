/**
 * Every resource's endpoint table: the whole API as data. The daemon's routes, the HTTP client (CLI and web UI)
 * and the in-process application are derived from it. Add a resource here and in src/app/index.ts.
 */
import type { Contract } from '../endpoint.ts';
import { hostEndpoints } from './host.ts';
import { imageEndpoints } from './images.ts';
import { instanceEndpoints } from './instances.ts';
import { operationEndpoints } from './operations.ts';

export const API = {
  instances: instanceEndpoints,
  operations: operationEndpoints,
  host: hostEndpoints,
  images: imageEndpoints,
};

export type ApiTables = typeof API;

/** The whole API as a caller uses it: the same object in-process and over HTTP. */
export type Api = { [K in keyof ApiTables]: Contract<ApiTables[K]> };
