import type { FastifyInstance } from 'fastify';
import { RESOURCES } from '../../app/index.ts';
import type { Resource } from '../../app/resource.ts';
import type { DaemonCore } from '../core.ts';
import { mountResource } from '../route-table.ts';
import { consoleLogRoutes } from './console-log.ts';
import { eventRoutes } from './events.ts';
import { metricsRoutes } from './metrics.ts';
import { uiLoginRoutes } from './ui-login.ts';

export type RouteModule = (app: FastifyInstance, core: DaemonCore) => Promise<void>;

/** The routes of every resource of the application layer (src/app), from their endpoint tables. */
const applicationRoutes: RouteModule = async (app, core) => {
  for (const res of Object.values(RESOURCES) as Resource[]) mountResource(app, core, res);
};

/**
 * One module per resource, each in this style: typebox schemas from src/api/schemas.ts, `withErrors`, long work
 * through `core.operations.start`, and one line here.
 */
export const ROUTE_MODULES: readonly RouteModule[] = [
  applicationRoutes,
  consoleLogRoutes,
  eventRoutes,
  metricsRoutes,
  uiLoginRoutes,
];
