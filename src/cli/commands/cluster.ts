import type { Command } from 'commander';
import { invalid } from '../../lib/errors.ts';
import { api } from '../api.ts';
import type { CallOptions } from '../../api/endpoint.ts';
import { printer, table } from '../output.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function labels(values: string[] | undefined): Record<string, string> | undefined {
  if (values === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const m = /^([a-z0-9][a-z0-9._/-]*)=(.*)$/i.exec(v);
    if (m === null) throw invalid('label', `"${v}" is not KEY=VALUE`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

function port(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw invalid('api-port', `"${value}" is not a TCP port (1-65535)`);
  return Number(value);
}

interface EtcdOptions {
  etcd?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
}

const etcdFiles = (o: EtcdOptions, resolve: (p: string) => string) => ({
  ...(o.etcdCa === undefined ? {} : { etcdCa: resolve(o.etcdCa) }),
  ...(o.etcdCert === undefined ? {} : { etcdCert: resolve(o.etcdCert) }),
  ...(o.etcdKey === undefined ? {} : { etcdKey: resolve(o.etcdKey) }),
});

interface MoveReport {
  name: string;
  from: string;
  to?: string | undefined;
  result: string;
  reason?: string | undefined;
  downtimeMs?: number | undefined;
}

/** Per instance: where it went (or was to go) and why not, as a table. */
function reportTable(reports: MoveReport[], withFrom: boolean): string {
  const detail = (r: MoveReport) => [r.downtimeMs === undefined ? '' : `downtime ${r.downtimeMs} ms`, r.reason ?? ''].filter((x) => x !== '').join('; ') || '-';
  return table(
    ['INSTANCE', ...(withFrom ? ['FROM'] : []), 'TO', 'RESULT', 'DETAIL'],
    reports.map((r) => [r.name, ...(withFrom ? [r.from] : []), r.to ?? '-', r.result, detail(r)]),
  );
}

/** A line per progress entry on stderr, as `virtnode move` prints them. */
const progress = (signal: AbortSignal): CallOptions => ({
  signal,
  onPhase: (phase, detail, ms) => process.stderr.write(`[${(ms / 1000).toFixed(1).padStart(6)} s] ${phase.padEnd(10)} ${detail}\n`),
});

/** Instances that should have moved but did not make the command fail (exit 1) once everything is printed. */
function failIfAny(reports: MoveReport[]): void {
  const failed = reports.filter((r) => r.result === 'failed').length;
  if (failed === 0) return;
  process.stderr.write(`error: ${failed} instance(s) could not be moved (see DETAIL above)\n`);
  process.exitCode = 1;
}

const GIB = 1024 ** 3;
const gib = (n: number) => `${(n / GIB).toFixed(1)}G`;

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('several hosts as one, their shared state in etcd');

  cluster
    .command('init')
    .description('form a cluster with this host first: a cluster CA, its certificate, an etcd member (or --etcd)')
    .requiredOption('--address <ip>', "this host's address on the cluster network")
    .option('--name <host>', 'this host\'s name in the cluster (default: its hostname)')
    .option('--api-port <port>', 'port of the cluster API between hosts (default 7443)')
    .option('--label <key=value>', 'a label placement can require (repeatable)', collect)
    .option('--etcd <urls>', 'use an existing etcd (client URLs, comma-separated) instead of running members')
    .option('--etcd-ca <file>', 'its CA certificate (PEM)')
    .option('--etcd-cert <file>', 'a client certificate it accepts (PEM)')
    .option('--etcd-key <file>', 'that certificate\'s key (PEM)')
    .option('--format <format>', 'table, json or yaml')
    .action(async (o: EtcdOptions & { address: string; name?: string; apiPort?: string; label?: string[]; format?: string }) => {
      const { resolve } = await import('node:path');
      const print = printer(o.format);
      const l = labels(o.label);
      const p = port(o.apiPort);
      const status = await (await api()).cluster.init({
        address: o.address,
        ...(o.name === undefined ? {} : { host: o.name }),
        ...(p === undefined ? {} : { apiPort: p }),
        ...(l === undefined ? {} : { labels: l }),
        ...(o.etcd === undefined ? {} : { etcd: o.etcd.split(',').filter((u) => u !== '') }),
        ...etcdFiles(o, resolve),
      });
      await print(status, () => `Formed cluster ${status.clusterId} with ${status.host} (${o.etcd === undefined ? 'etcd member on this host' : 'external etcd'})\n`);
    });

  cluster
    .command('add')
    .description('print a single-use join token (valid 15 minutes) for a new host')
    .argument('<host>', 'the new host\'s name in the cluster')
    .option('--format <format>', 'table, json or yaml')
    .action(async (host: string, o: { format?: string }) => {
      const print = printer(o.format);
      const issued = await (await api()).cluster.add({ host });
      await print(issued, () => `${issued.token}\n`);
      if (o.format === undefined) process.stderr.write(`On ${issued.host}: virtnode cluster join TOKEN --address IP (the token expires at ${issued.expiresAt})\n`);
    });

  cluster
    .command('join')
    .description('join a cluster with a token from `virtnode cluster add`')
    .argument('<token>', 'the join token')
    .requiredOption('--address <ip>', "this host's address on the cluster network")
    .option('--api-port <port>', 'port of the cluster API between hosts (default 7443)')
    .option('--label <key=value>', 'a label placement can require (repeatable)', collect)
    .option('--etcd-ca <file>', 'for a cluster on an external etcd: its CA certificate (PEM)')
    .option('--etcd-cert <file>', 'a client certificate it accepts (PEM)')
    .option('--etcd-key <file>', 'that certificate\'s key (PEM)')
    .option('--format <format>', 'table, json or yaml')
    .action(async (token: string, o: EtcdOptions & { address: string; apiPort?: string; label?: string[]; format?: string }) => {
      const { resolve } = await import('node:path');
      const print = printer(o.format);
      const l = labels(o.label);
      const p = port(o.apiPort);
      const status = await (await api()).cluster.join({ token, address: o.address, ...(p === undefined ? {} : { apiPort: p }), ...(l === undefined ? {} : { labels: l }), ...etcdFiles(o, resolve) });
      const me = status.hosts.find((h) => h.name === status.host);
      await print(status, () => `Joined cluster ${status.clusterId} as ${status.host}${me?.etcdMember === true ? ' (etcd member)' : ''}\n`);
    });

  cluster
    .command('ls')
    .alias('list')
    .description('hosts (state, capacity and use), the etcd members and leader')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const print = printer(o.format);
      const s = await (await api()).cluster.status();
      await print(s, () => {
        if (!s.enabled) return 'This host is standalone (not in a cluster).\n';
        const fence = s.fenced === undefined ? '' : `${s.host} is FENCED since ${s.fenced.since} (${s.fenced.reason}): it takes no new work until it holds its lease again\n`;
        const hosts = table(
          ['HOST', 'ADDRESS', 'STATE', 'ETCD', 'CPUS', 'MEMORY', 'INSTANCES', 'LABELS'],
          s.hosts.map((h) => [
            h.name,
            h.address,
            h.state,
            h.etcdMember ? (s.etcd.leader === h.name ? 'leader' : 'member') : '-',
            h.capacity === undefined ? '-' : `${h.use?.cpus ?? 0}/${h.capacity.cpus}`,
            h.capacity === undefined ? '-' : `${gib(h.use?.memoryBytes ?? 0)}/${gib(h.capacity.memoryBytes)}`,
            h.use === undefined ? '-' : `${h.use.running}/${h.use.instances}`,
            Object.entries(h.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-',
          ]),
        );
        const members = s.etcd.members.map((m) => `${m.name || '(starting)'}${m.leader ? ' (leader)' : ''}`).join(', ');
        return `${fence}${hosts}etcd: ${s.etcd.external ? 'external, ' : ''}${s.etcd.members.length} member(s): ${members}\n`;
      });
    });

  cluster
    .command('remove')
    .alias('rm')
    .description('forget a host and its etcd member; --force for one that is online, or gone for good')
    .argument('<host>', 'the host')
    .option('--force', 'remove it even while it is online')
    .action(async (host: string, o: { force?: boolean }) => {
      await (await api()).cluster.remove({ host, ...(o.force === true ? { force: true } : {}) });
      process.stdout.write(`Removed host ${host} from the cluster\n`);
    });

  cluster
    .command('recover')
    .description("quorum-loss recovery, on the host whose etcd member survived: it becomes a one-member etcd cluster on its own data (refused while etcd has its quorum)")
    .action(async () => {
      const s = await (await api()).cluster.recover();
      const lost = s.hosts.filter((h) => h.etcdMember && h.name !== s.host).map((h) => h.name);
      process.stdout.write(`Recovered: ${s.host} runs the cluster's only etcd member now${lost.length === 0 ? '' : `; remove the lost hosts with \`virtnode cluster remove HOST\` (${lost.join(', ')})`}\n`);
    });

  for (const [verb, description] of [
    ['evacuate', 'take a host out of placement and move its running instances live to hosts the scheduler picks'],
    ['restore', 'put an evacuated host back into placement and move the instances its evacuation moved away back'],
  ] as const) {
    cluster
      .command(verb)
      .description(description)
      .argument('<host>', 'the host')
      .option('--format <format>', 'table, json or yaml', 'table')
      .action(async (host: string, o: { format?: string }) => {
        const print = printer(o.format);
        const { interruptibly } = await import('../interrupt.ts');
        const client = await api();
        const r = await interruptibly((signal) => client.cluster[verb]({ host }, progress(signal)));
        const counts = ['moved', 'stays', 'failed'].map((k) => `${r.instances.filter((i) => i.result === k).length} ${k === 'stays' ? 'stay' : k}`).join(', ');
        const head = verb === 'evacuate' ? `Evacuated ${r.host} (out of placement): ${counts}` : `Restored ${r.host} (in placement again): ${counts}`;
        await print(r, () => (r.instances.length === 0 ? `${head}; no instances ${verb === 'evacuate' ? 'on it' : 'to bring back'}\n` : `${head}\n${reportTable(r.instances, verb === 'restore')}`));
        failIfAny(r.instances);
      });
  }

  cluster
    .command('rebalance')
    .description('even out CPU and memory use across the online hosts by moving running instances live')
    .option('--dry-run', 'print the plan (instance, from, to, why) and change nothing')
    .option('--threshold <percent>', 'hosts whose loads differ by no more than this are balanced', '10')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { dryRun?: boolean; threshold: string; format?: string }) => {
      if (!/^\d{1,3}$/.test(o.threshold) || Number(o.threshold) < 1 || Number(o.threshold) > 100) throw invalid('threshold', `"${o.threshold}" is not a whole percentage from 1 to 100`);
      const print = printer(o.format);
      const { interruptibly } = await import('../interrupt.ts');
      const client = await api();
      const r = await interruptibly((signal) => client.cluster.rebalance({ dryRun: o.dryRun === true, threshold: Number(o.threshold) }, progress(signal)));
      await print(r, () => {
        const loads = r.hosts.map((h) => `${h.name} ${h.loadPercent}% (CPU ${h.cpuPercent}%, memory ${h.memoryPercent}%)`).join(', ');
        const head = `Loads: ${loads}; spread ${r.spreadBeforePercent}%, threshold ${r.thresholdPercent}%\n`;
        if (r.moves.length === 0) return `${head}No moves: ${r.note}\n`;
        const what = r.dryRun ? `Plan (dry run, nothing changed): ${r.moves.length} move(s), spread ${r.spreadBeforePercent}% -> ${r.spreadAfterPercent}%` : `Rebalanced: ${r.moves.filter((m) => m.result === 'moved').length} of ${r.moves.length} move(s) made, spread ${r.spreadBeforePercent}% -> ${r.spreadAfterPercent}% as planned`;
        return `${head}${what}\n${table(['INSTANCE', 'FROM', 'TO', 'RESULT', 'WHY'], r.moves.map((m) => [m.name, m.from, m.to ?? '-', m.result, [m.downtimeMs === undefined ? '' : `downtime ${m.downtimeMs} ms`, m.reason ?? ''].filter((x) => x !== '').join('; ')]))}`;
      });
      failIfAny(r.moves);
    });
}
