import type { FastifyInstance } from 'fastify';
import type { DaemonCore } from '../core.ts';
import { consoleLogRoutes } from './console-log.ts';
import { deviceRoutes } from './devices.ts';
import { eventRoutes } from './events.ts';
import { hostRoutes } from './host.ts';
import { imageRoutes } from './images.ts';
import { instanceRoutes } from './instances.ts';
import { metricsRoutes } from './metrics.ts';
import { networkRoutes } from './networks.ts';
import { operationRoutes } from './operations.ts';
import { snapshotRoutes } from './snapshots.ts';
import { storageRoutes } from './storage.ts';
import { templateRoutes } from './templates.ts';

export type RouteModule = (app: FastifyInstance, core: DaemonCore) => Promise<void>;

/**
 * One module per resource, each in this style: typebox schemas from src/api/schemas.ts, `withErrors`, long work
 * through `core.operations.start`, and one line here.
 */
export const ROUTE_MODULES: readonly RouteModule[] = [
  hostRoutes,
  imageRoutes,
  instanceRoutes,
  consoleLogRoutes,
  networkRoutes,
  storageRoutes,
  deviceRoutes,
  snapshotRoutes,
  templateRoutes,
  operationRoutes,
  eventRoutes,
  metricsRoutes,
];
