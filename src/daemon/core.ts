import type { Logger } from 'pino';
import { reconcile } from '../app/reconcile.ts';
import { createCoreContext } from '../core/context.ts';
import { ImageStore } from '../images/store/index.ts';
import { InstanceService } from '../instances/service.ts';
import type { StatePaths } from '../lib/paths.ts';
import type { Db } from '../store/db.ts';
import { PolicyRepository } from '../store/policies.ts';
import { OperationRepository } from '../store/operations.ts';
import { TokenRepository } from '../store/tokens.ts';
import { ConsoleTickets } from '../web/consoles/tickets.ts';
import { EventBus } from './events.ts';
import type { MetricsCollector } from './metrics.ts';
import { OperationManager } from './operations.ts';
import { Supervisor } from './supervisor.ts';

/**
 * Everything the routes work with: the one core shared by the UNIX-socket and the TCP servers (and by any
 * plugin a later module registers, such as the web UI).
 */
export interface DaemonCore {
  paths: StatePaths;
  db: Db;
  instances: InstanceService;
  images: ImageStore;
  policies: PolicyRepository;
  tokens: TokenRepository;
  events: EventBus;
  /** Single-use tickets for the WebSockets a browser opens (events, consoles), shared by every listener. */
  tickets: ConsoleTickets;
  operations: OperationManager;
  /** Loaded on the first scrape (prom-client stays off the start-up path, which re-adoption waits for). */
  metrics: () => Promise<MetricsCollector>;
  supervisor: Supervisor;
  log: Logger;
  version: string;
}

export function createCore(paths: StatePaths, log: Logger): DaemonCore {
  const instances = new InstanceService(createCoreContext(paths, { reconcile }));
  const db = instances.db;
  const events = new EventBus();
  const policies = new PolicyRepository(db);
  const supervisor = new Supervisor(instances, policies, events, log.child({ component: 'supervisor' }));
  const operations = new OperationManager(events, new OperationRepository(db), {
    log: log.child({ component: 'operations' }),
    onFinish: (op) => {
      log.info({ operation: op.id, kind: op.kind, target: op.target, status: op.status, error: op.error }, 'operation finished');
      supervisor.poke();
    },
  });
  let metrics: Promise<MetricsCollector> | undefined;
  return {
    paths,
    db,
    instances,
    images: new ImageStore(paths, db),
    policies,
    tokens: new TokenRepository(db),
    events,
    tickets: new ConsoleTickets(),
    operations,
    metrics: () => (metrics ??= import('./metrics.ts').then((m) => new m.MetricsCollector(instances))),
    supervisor,
    log,
    version: '0.1.0',
  };
}
