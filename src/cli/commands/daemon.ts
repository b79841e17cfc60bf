import type { Command } from 'commander';
import type { UiLoginView } from '../../api/schemas.ts';
import { invalid } from '../../lib/errors.ts';
import { validateName } from '../../lib/names.ts';
import { printer, table } from '../output.ts';

async function tokens() {
  const [{ statePaths }, { openDb }, { TokenRepository }] = await Promise.all([import('../../lib/paths.ts'), import('../../store/db.ts'), import('../../store/tokens.ts')]);
  return new TokenRepository(openDb(statePaths().db));
}

export function registerDaemonCommands(program: Command): void {
  program
    .command('daemon')
    .description('run the REST API (UNIX socket; TCP only with TLS and tokens) and watch instances: re-adopt, autostart, restart policies')
    .option('--socket <path>', 'UNIX socket (default: /run/virtnode/virtnode.sock for root, else in the state directory)')
    .option('--group <group>', 'group allowed to use the socket (mode 0660)')
    .option('--listen <host:port>', 'also serve HTTPS on TCP; every request then needs a token (`virtnode token create`)')
    .option('--tls-cert <file>', 'TLS certificate (PEM) for --listen')
    .option('--tls-key <file>', 'TLS private key (PEM) for --listen')
    .option('--allow-private-pulls', 'clients over TCP may pull images from this host, its link and private networks')
    .option('--allow-path <dir>', 'a directory under which clients over TCP may name host files (disks, images, exports); repeatable; none by default', (dir: string, all: string[] = []) => [...all, dir])
    .option('--stop-guests-on-shutdown', 'on SIGTERM, power guests off (ACPI, then forced) instead of leaving them running')
    .option('--shutdown-timeout <seconds>', 'with --stop-guests-on-shutdown: how long guests get to power off', '120')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (JSON lines on stdout)', 'info')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const { invalid } = await import('../../lib/errors.ts');
      const timeout = Number(o['shutdownTimeout']);
      if (!Number.isInteger(timeout) || timeout < 0) throw invalid('--shutdown-timeout', `"${o['shutdownTimeout']}" is not a number of seconds`);
      const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];
      if (!levels.includes(String(o['logLevel']))) throw invalid('--log-level', `"${o['logLevel']}" is not valid`, `use ${levels.join(', ')}`);
      const { runDaemon } = await import('../../daemon/main.ts');
      const pick = (k: string) => (typeof o[k] === 'string' ? { [k]: o[k] as string } : {});
      await runDaemon({
        ...pick('socket'),
        ...pick('group'),
        ...pick('listen'),
        ...pick('tlsCert'),
        ...pick('tlsKey'),
        ...(Array.isArray(o['allowPath']) ? { allowPaths: o['allowPath'] as string[] } : {}),
        allowPrivatePulls: o['allowPrivatePulls'] === true,
        stopGuestsOnShutdown: o['stopGuestsOnShutdown'] === true,
        shutdownTimeoutMs: timeout * 1000,
        logLevel: String(o['logLevel']),
      });
    });

  program
    .command('ui')
    .description('print a one-time link that opens the web UI logged in (the daemon must run with --listen)')
    .action(async () => {
      const { connect } = await import('../backend.ts');
      const connection = await connect();
      if (connection.kind === 'local') {
        throw invalid('daemon', 'no daemon runs here: the web UI is served by `virtnode daemon --listen HOST:PORT`', 'start one, e.g. virtnode daemon --listen 127.0.0.1:8443 (it makes its own TLS certificate)');
      }
      const { body } = await connection.client.request<UiLoginView>('POST', '/ui-logins');
      process.stdout.write(`${body.url}\n`);
      const notes = [`The link works once, until ${body.expiresAt}; the browser then keeps its own session token for 12 hours.`];
      if (body.tlsFingerprint256 !== undefined) notes.push(`The daemon's own certificate has the SHA-256 fingerprint ${body.tlsFingerprint256}: check it when the browser asks.`);
      process.stderr.write(`${notes.join('\n')}\n`);
    });

  const token = program.command('token').description('bearer tokens for the API over TCP (stored hashed; shown once)');
  token
    .command('create')
    .description('make a token and print it (only this once)')
    .argument('<name>', 'what the token is for, a DNS label (e.g. ci, grafana)')
    .option('--read-only', 'it may only read (GET, the events stream): no change, no console')
    .option('--expires <duration>', 'it ends after this long (e.g. 12h, 30d); default: when revoked')
    .action(async (name: string, o: { readOnly?: boolean; expires?: string }) => {
      const { parseDuration } = await import('../duration.ts');
      validateName('name', name);
      const validForMs = o.expires === undefined ? undefined : parseDuration('--expires', o.expires);
      if (validForMs === 0) throw invalid('--expires', `"${o.expires}" would end the token at once`, 'give a duration above zero, e.g. 12h or 30d');
      const { token: secret, info } = (await tokens()).create(name, { scope: o.readOnly === true ? 'read-only' : 'admin', ...(validForMs === undefined ? {} : { validForMs }) });
      process.stdout.write(`${secret}\n`);
      const limits = [info.scope === 'read-only' ? 'read-only' : '', info.expiresAt === undefined ? '' : `expires ${info.expiresAt}`].filter((x) => x !== '');
      process.stderr.write(`Created token ${name}${limits.length === 0 ? '' : ` (${limits.join(', ')})`}. It is shown only now: keep it (e.g. VIRTNODE_TOKEN=...); revoke it with \`virtnode token revoke ${name}\`.\n`);
    });
  token
    .command('ls')
    .alias('list')
    .description('list tokens (names and dates; the tokens themselves are not stored)')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const print = printer(o.format);
      const all = (await tokens()).list();
      const rows = all.map((t) => ({ name: t.name, scope: t.scope, createdAt: t.createdAt, expiresAt: t.expiresAt ?? null, lastUsedAt: t.lastUsedAt ?? null }));
      await print(rows, () => table(['NAME', 'SCOPE', 'CREATED', 'EXPIRES', 'LAST USED'], rows.map((t) => [t.name, t.scope, t.createdAt, t.expiresAt ?? 'never', t.lastUsedAt ?? '-'])));
    });
  token
    .command('revoke')
    .description('revoke a token: requests with it are refused from now on')
    .argument('<name>')
    .action(async (name: string) => {
      (await tokens()).revoke(name);
      process.stdout.write(`Revoked token ${name}\n`);
    });
}
