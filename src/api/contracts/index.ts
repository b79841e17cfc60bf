/**
 * Every resource's endpoint table: the whole API as data. The daemon's routes, the HTTP client (CLI and web UI)
 * and the in-process application are derived from it. Add a resource here and in src/app/index.ts.
 */
import type { Contract } from '../endpoint.ts';
import { applyEndpoints } from './apply.ts';
import { clusterEndpoints } from './cluster.ts';
import { hostEndpoints } from './host.ts';
import { imageEndpoints } from './images.ts';
import { instanceEndpoints } from './instances.ts';
import { interopEndpoints } from './interop.ts';
import { networkEndpoints } from './networks.ts';
import { nicEndpoints } from './nics.ts';
import { operationEndpoints } from './operations.ts';
import { portEndpoints } from './ports.ts';
import { storageEndpoints } from './storage.ts';
import { templateEndpoints } from './templates.ts';

export const API = {
  instances: instanceEndpoints,
  networks: networkEndpoints,
  nics: nicEndpoints,
  ports: portEndpoints,
  templates: templateEndpoints,
  operations: operationEndpoints,
  host: hostEndpoints,
  images: imageEndpoints,
  ...storageEndpoints,
  interop: interopEndpoints,
  apply: applyEndpoints,
  cluster: clusterEndpoints,
};

export type ApiTables = typeof API;

/** The whole API as a caller uses it: the same object in-process and over HTTP. */
export type Api = { [K in keyof ApiTables]: Contract<ApiTables[K]> };
