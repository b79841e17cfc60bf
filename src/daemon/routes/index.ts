import type { FastifyInstance } from 'fastify';
import type { DaemonCore } from '../core.ts';
import { eventRoutes } from './events.ts';
import { hostRoutes } from './host.ts';
import { imageRoutes } from './images.ts';
import { instanceRoutes } from './instances.ts';
import { metricsRoutes } from './metrics.ts';
import { networkRoutes } from './networks.ts';
import { operationRoutes } from './operations.ts';

export type RouteModule = (app: FastifyInstance, core: DaemonCore) => Promise<void>;

/**
 * One module per resource. Storage (pools, volumes, snapshots) and clones/templates come next: each adds
 * `routes/storage.ts`, `routes/snapshots.ts`, `routes/templates.ts` in this style (typebox schemas from
 * src/api/schemas.ts, `withErrors`, long work through `core.operations.start`) and one line here.
 */
export const ROUTE_MODULES: readonly RouteModule[] = [
  hostRoutes,
  imageRoutes,
  instanceRoutes,
  networkRoutes,
  // storageRoutes, snapshotRoutes, templateRoutes,
  operationRoutes,
  eventRoutes,
  metricsRoutes,
];
