import type { FastifyInstance } from 'fastify';
import type { DaemonCore } from '../core.ts';
import { eventRoutes } from './events.ts';
import { hostRoutes } from './host.ts';
import { imageRoutes } from './images.ts';
import { instanceRoutes } from './instances.ts';
import { metricsRoutes } from './metrics.ts';
import { operationRoutes } from './operations.ts';

export type RouteModule = (app: FastifyInstance, core: DaemonCore) => Promise<void>;

/**
 * One module per resource. Storage (pools, volumes, snapshots, clones, templates) and networks are being built
 * on their own branches: each adds `routes/storage.ts` / `routes/networks.ts` in this style (typebox schemas
 * from src/api/schemas.ts, `withErrors`, long work through `core.operations.start`) and one line here.
 */
export const ROUTE_MODULES: readonly RouteModule[] = [
  hostRoutes,
  imageRoutes,
  instanceRoutes,
  // storageRoutes,
  // networkRoutes,
  operationRoutes,
  eventRoutes,
  metricsRoutes,
];
