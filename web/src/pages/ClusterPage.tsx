import { useEffect, useState } from 'preact/hooks';
import { API, client, start, type Operation } from '../api.ts';
import { OperationProgress } from '../components/OperationProgress.tsx';
import { TableHead } from '../components/TableHead.tsx';
import { bytes, message } from '../lib/format.ts';
import { operationEnded, useResource } from '../lib/use-resource.ts';
import type { Live } from '../store.ts';

/** Host liveness lives in etcd, not in this daemon's events: the page asks again this often while it is open. */
const REFRESH_MS = 5_000;

const HOST_WORK = ['evacuate', 'restore', 'rebalance'];

interface MoveReport {
  name: string;
  from: string;
  to?: string;
  result: string;
  reason?: string;
}

/** What an evacuation, restore or rebalance did (or plans), one row per instance. */
function MoveReports({ op }: { op: Operation }) {
  const result = op.result as { instances?: MoveReport[]; moves?: MoveReport[]; note?: string } | undefined;
  const rows = result?.instances ?? result?.moves ?? [];
  return (
    <>
      {result?.note !== undefined && <p data-testid="work-note">{result.note}</p>}
      {rows.length > 0 && (
        <table data-testid="work-result">
          <caption class="sr-only">What became of each instance</caption>
          <TableHead columns={['Instance', 'From', 'To', 'Result', 'Why']} />
          <tbody>
            {rows.map((r) => (
              <tr>
                <td>{r.name}</td>
                <td>{r.from}</td>
                <td>{r.to ?? '–'}</td>
                <td>{r.result}</td>
                <td>{r.reason ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

/**
 * The cluster as `virtnode cluster ls` shows it: hosts with their state, capacity and use, and the etcd members;
 * evacuating and restoring a host, and rebalancing, as on the CLI (operations followed here).
 */
export function ClusterPage({ live }: { live: Live }) {
  const status = useResource(() => client.cluster.status(), (e) => e.type === 'instance' || operationEnded(...HOST_WORK)(e));
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    const timer = setInterval(() => void status.reload(), REFRESH_MS);
    return () => clearInterval(timer);
  }, []);
  const s = status.data;
  const work = [...live.operations.values()].filter((o) => HOST_WORK.includes(o.kind)).at(-1);
  const busy = work?.status === 'running';
  const run = (begin: () => Promise<Operation>) => {
    setError(undefined);
    begin().catch((e: unknown) => setError(message(e)));
  };
  const evacuate = (host: string) => {
    if (window.confirm(`Take ${host} out of placement and move its running instances live to other hosts?`)) run(() => start(API.cluster.evacuate, { host }));
  };
  return (
    <section>
      <header class="page-header">
        <h1>Cluster</h1>
      </header>
      {status.error !== undefined && <p class="error" role="alert">{status.error}</p>}
      {error !== undefined && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {s === undefined && status.error === undefined && <p class="muted">loading…</p>}
      {s !== undefined && !s.enabled && (
        <p data-testid="standalone">
          This is a standalone host. Form a cluster with <code>virtnode cluster init --address IP</code> on it, then add hosts with{' '}
          <code>virtnode cluster add NAME</code> and <code>virtnode cluster join TOKEN --address IP</code> on each.
        </p>
      )}
      {s?.enabled === true && (
        <>
          <p>
            Cluster <code>{s.clusterId}</code>, answered by <strong>{s.host}</strong>.
          </p>
          {s.fenced !== undefined && (
            <p class="error" role="alert" data-testid="fenced">
              This host is fenced since {s.fenced.since}: {s.fenced.reason}. It takes no new work until it holds its lease again.
            </p>
          )}
          <table data-testid="cluster-hosts">
            <caption class="sr-only">Hosts</caption>
            <TableHead columns={['Host', 'State', 'Address', 'Instances', 'CPUs used', 'Memory used', 'Accelerator', 'Labels']} actions />
            <tbody>
              {s.hosts.map((h) => (
                <tr data-testid={`cluster-host-${h.name}`}>
                  <td>
                    {h.name}
                    {h.etcdMember ? ' (etcd)' : ''}
                  </td>
                  <td>
                    <span class={`state state-${h.state === 'online' ? 'running' : 'stopped'}`} data-testid="host-state">
                      {h.state}
                    </span>
                  </td>
                  <td>{h.address}</td>
                  <td>{h.use === undefined ? '–' : `${h.use.running} running of ${h.use.instances}`}</td>
                  <td>{h.use === undefined || h.capacity === undefined ? '–' : `${h.use.cpus} of ${h.capacity.cpus}`}</td>
                  <td>{h.use === undefined || h.capacity === undefined ? '–' : `${bytes(h.use.memoryBytes)} of ${bytes(h.capacity.memoryBytes)}`}</td>
                  <td>{h.capacity?.accelerator ?? '–'}</td>
                  <td>
                    {Object.entries(h.labels)
                      .map(([k, v]) => `${k}=${v}`)
                      .join(', ') || '–'}
                  </td>
                  <td>
                    {h.state === 'online' && (
                      <button type="button" class="danger" disabled={busy} onClick={() => evacuate(h.name)}>
                        Evacuate
                      </button>
                    )}
                    {h.state === 'evacuated' && (
                      <button type="button" disabled={busy} onClick={() => run(() => start(API.cluster.restore, { host: h.name }))}>
                        Restore
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <div class="actions" role="group" aria-label="rebalance the cluster">
            <button type="button" disabled={busy} onClick={() => run(() => start(API.cluster.rebalance, { dryRun: true }))}>
              Plan a rebalance
            </button>
            <button type="button" disabled={busy} onClick={() => run(() => start(API.cluster.rebalance, {}))}>
              Rebalance
            </button>
          </div>
          {work !== undefined && (
            <div data-testid="host-work">
              <OperationProgress op={work} label={`${work.kind[0]!.toUpperCase()}${work.kind.slice(1)}${work.target?.startsWith('cluster/hosts/') ? ` of ${work.target.slice('cluster/hosts/'.length)}` : ''}`} />
              {work.status === 'succeeded' && <MoveReports op={work} />}
            </div>
          )}
          <h2>etcd</h2>
          <p data-testid="etcd-summary">
            {s.etcd.external ? 'An existing etcd cluster' : 'Members run by virtnode'}: {s.etcd.members.length} member{s.etcd.members.length === 1 ? '' : 's'}, leader{' '}
            <strong>{s.etcd.leader ?? 'unknown'}</strong>.
          </p>
          <ul class="plain">
            {s.etcd.members.map((m) => (
              <li>
                {m.name} {m.leader ? '(leader)' : ''} <span class="muted">{m.clientUrls.join(', ')}</span>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
