import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { invalid, toVirtnodeError } from '../lib/errors.ts';
import { statePaths } from '../lib/paths.ts';
import { defaultSocketPath } from '../lib/socket-path.ts';
import { allowedRoots } from '../app/request-paths.ts';
import { createCore } from './core.ts';
import { groupId, listenUnix, parseListen } from './listen.ts';
import { STREAM_CHECK_INTERVAL_MS } from './open-streams.ts';
import { operationLogFields } from './operation-scope.ts';
import { selfSignedCertificate } from './self-signed.ts';

export interface DaemonOptions {
  socket?: string;
  group?: string;
  listen?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** Directories under which a client over TCP may name host paths. */
  allowPaths?: string[];
  /** Clients over TCP may pull images from loopback, link-local and private addresses. */
  allowPrivatePulls?: boolean;
  stopGuestsOnShutdown?: boolean;
  /** How long each guest gets to power off with --stop-guests-on-shutdown. */
  shutdownTimeoutMs?: number;
  logLevel?: string;
}

/** The host name a browser uses for the TCP listener: this host's name when it listens on every address. */
function uiHost(listenHost: string): string {
  if (listenHost === '0.0.0.0' || listenHost === '::') return hostname();
  return listenHost.includes(':') ? `[${listenHost}]` : listenHost;
}

function readPem(field: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw invalid(field, `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/**
 * `virtnode daemon`: the REST API on a UNIX socket (and on TCP with TLS and tokens when asked), the supervisor
 * that re-adopts and watches instances, metrics. Guests outlive it: SIGTERM stops the daemon and leaves them
 * running, unless --stop-guests-on-shutdown (then they are powered off like libvirt-guests does).
 */
export async function runDaemon(options: DaemonOptions): Promise<void> {
  // Every option is checked before anything happens.
  const socket = options.socket ?? defaultSocketPath();
  const gid = options.group === undefined ? undefined : groupId(options.group);
  let tcp: { host: string; port: number; cert: string; key: string; fingerprint256?: string } | undefined;
  if (options.listen !== undefined) {
    const address = parseListen(options.listen);
    if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
      throw invalid(options.tlsCert === undefined ? '--tls-cert' : '--tls-key', 'give both --tls-cert and --tls-key, or neither', 'without them the daemon makes a self-signed certificate of its own');
    }
    if (options.tlsCert !== undefined && options.tlsKey !== undefined) {
      tcp = { ...address, cert: readPem('--tls-cert', options.tlsCert), key: readPem('--tls-key', options.tlsKey) };
    } else {
      // TLS always: without a certificate of the administrator's, one of its own (its fingerprint is logged).
      const own = await selfSignedCertificate(join(statePaths().root, 'tls'), address.host);
      tcp = { ...address, cert: own.cert, key: own.key, fingerprint256: own.fingerprint256 };
    }
  } else if (options.tlsCert !== undefined || options.tlsKey !== undefined) {
    throw invalid('--tls-cert', '--tls-cert and --tls-key are for --listen', 'add --listen HOST:PORT');
  }
  const remotePaths = allowedRoots(options.allowPaths ?? []);

  // Lines logged while an operation's work runs carry its id (`operation`), wherever they come from.
  const log = pino({ level: options.logLevel ?? process.env['VIRTNODE_LOG_LEVEL'] ?? 'info', base: { pid: process.pid, service: 'virtnode' }, mixin: operationLogFields });
  const paths = statePaths();
  // The HTTP stack loads while the supervisor re-adopts the running guests: adoption needs none of it.
  const http = Promise.all([import('./app.ts'), import('./plugins.ts')]);
  http.catch(() => {});
  const core = createCore(paths, log, { remotePaths, allowPrivatePulls: options.allowPrivatePulls === true });
  const report = await core.supervisor.start({ autostartMarkerDir: paths.cache });
  // After reconcile: what a killed daemon left running is failed now, its instance already repaired.
  const interrupted = core.operations.recoverInterrupted();
  const [{ buildApp }, { DAEMON_PLUGINS }] = await http;

  // TCP first: once the socket answers, the daemon is fully up (the CLI and tests wait for the socket).
  const servers: FastifyInstance[] = [];
  if (tcp !== undefined) {
    const remote = await buildApp(core, { auth: 'token', https: { cert: tcp.cert, key: tcp.key }, plugins: DAEMON_PLUGINS });
    await remote.listen({ host: tcp.host, port: tcp.port });
    servers.push(remote);
    core.webUi = { url: `https://${uiHost(tcp.host)}:${tcp.port}`, ...(tcp.fingerprint256 === undefined ? {} : { tlsFingerprint256: tcp.fingerprint256 }) };
  }
  const local = await buildApp(core, { auth: 'none', plugins: DAEMON_PLUGINS });
  await listenUnix(local, socket, gid);
  servers.push(local);
  const streamCheck = setInterval(() => {
    const closed = core.streams.closeEnded((name) => core.tokens.valid(name));
    if (closed > 0) log.info({ closed }, 'streams of revoked or expired tokens closed');
  }, STREAM_CHECK_INTERVAL_MS);
  // A cluster member brings up its etcd member, cluster API and lease in the background: a standalone host never
  // loads any of it, and a member whose etcd peers are down still serves its own instances.
  const clustered = existsSync(join(paths.root, 'cluster', 'cluster.json'));
  if (clustered) void core.cluster().then((c) => c.start()).catch((e: unknown) => log.error({ err: toVirtnodeError(e) }, 'cluster membership did not start'));
  log.info({ socket, tcp: tcp === undefined ? undefined : `${tcp.host}:${tcp.port}`, tlsFingerprint256: tcp?.fingerprint256, stateDir: paths.root, adopted: report.adopted.length, interruptedOperations: interrupted.length, startupMs: report.durationMs }, 'virtnode daemon ready');

  let shuttingDown = false;
  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal, stopGuests: options.stopGuestsOnShutdown === true }, 'daemon stopping');
    await core.supervisor.stop();
    if (existsSync(join(paths.root, 'cluster', 'cluster.json'))) await (await core.cluster()).stop().catch(() => undefined);
    clearInterval(streamCheck);
    await Promise.allSettled(servers.map((s) => s.close()));
    await core.operations.shutdown();
    if (options.stopGuestsOnShutdown) await stopGuests(core.instances, options.shutdownTimeoutMs ?? 120_000, log);
    log.info('daemon stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/** Powers every running guest off at once (ACPI, forced after the timeout), like libvirt-guests at host shutdown. */
async function stopGuests(service: import('../instances/service.ts').InstanceService, timeoutMs: number, log: import('pino').Logger): Promise<void> {
  const running = (await service.list()).filter((i) => i.state === 'running' || i.state === 'paused');
  await Promise.all(
    running.map(async (i) => {
      try {
        const result = await service.stop(i.name, { timeoutMs });
        log.info({ instance: i.name, method: result.method }, 'guest stopped for shutdown');
      } catch (e) {
        log.error({ instance: i.name, err: toVirtnodeError(e) }, 'could not stop guest');
      }
    }),
  );
}
