import type { Logger } from 'pino';
import type { AppCore } from '../app/context.ts';
import { createAppCore } from '../app/create-app-core.ts';
import type { StatePaths } from '../lib/paths.ts';
import { VERSION } from '../lib/version.ts';
import { openDb } from '../store/db.ts';
import { OperationRepository } from '../store/operations.ts';
import { TokenRepository } from '../store/tokens.ts';
import { ConsoleTickets } from './consoles/tickets.ts';
import { EventBus } from './events.ts';
import { OpenStreams } from './open-streams.ts';
import type { MetricsCollector } from './metrics.ts';
import { OperationManager } from './operations.ts';
import { Supervisor } from './supervisor.ts';

/**
 * Everything the routes work with: the one core shared by the UNIX-socket and the TCP servers (and by any
 * plugin a later module registers, such as the web UI).
 */
export interface DaemonCore extends AppCore {
  tokens: TokenRepository;
  events: EventBus;
  /** Single-use tickets for the WebSockets a browser opens (events, consoles), shared by every listener. */
  tickets: ConsoleTickets;
  /** One-time codes of web UI login links (`virtnode ui`), valid a few minutes. */
  logins: ConsoleTickets;
  /** Where the web UI is served (the TCP listener), once the daemon listens there. */
  webUi?: { url: string; tlsFingerprint256?: string };
  /** WebSockets and followed logs by the token that opened them, closed when it is revoked or expires. */
  streams: OpenStreams;
  operations: OperationManager;
  /** Loaded on the first scrape (prom-client stays off the start-up path, which re-adoption waits for). */
  metrics: () => Promise<MetricsCollector>;
  supervisor: Supervisor;
  log: Logger;
  version: string;
}

export function createCore(paths: StatePaths, log: Logger, options: { remotePaths?: readonly string[]; allowPrivatePulls?: boolean } = {}): DaemonCore {
  // The application layer's changes wake the supervisor, which is made over the same core.
  let wake = () => {};
  const db = openDb(paths.db);
  const events = new EventBus();
  const operations = new OperationManager(events, new OperationRepository(db), {
    log: log.child({ component: 'operations' }),
    onFinish: (op) => {
      log.info({ operation: op.id, kind: op.kind, target: op.target, status: op.status, error: op.error }, 'operation finished');
      wake();
    },
  });
  const app = createAppCore(paths, { db, changed: () => wake(), operations, clusterServing: true, ...options });
  const { instances, policies } = app;
  const supervisor = new Supervisor(instances, policies, events, log.child({ component: 'supervisor' }));
  wake = () => supervisor.poke();
  let metrics: Promise<MetricsCollector> | undefined;
  return {
    ...app,
    tokens: new TokenRepository(db),
    events,
    tickets: new ConsoleTickets(),
    logins: new ConsoleTickets({ ttlMs: 5 * 60_000 }), // time to open the link it printed
    streams: new OpenStreams(),
    operations,
    metrics: () => (metrics ??= import('./metrics.ts').then((m) => new m.MetricsCollector(instances))),
    supervisor,
    log,
    version: VERSION,
  };
}
