import { useEffect } from 'preact/hooks';
import { client } from '../api.ts';
import { TableHead } from '../components/TableHead.tsx';
import { bytes } from '../lib/format.ts';
import { useResource } from '../lib/use-resource.ts';

/** Host liveness lives in etcd, not in this daemon's events: the page asks again this often while it is open. */
const REFRESH_MS = 5_000;

/** The cluster as `virtnode cluster ls` shows it: hosts with their state, capacity and use, and the etcd members. */
export function ClusterPage() {
  const status = useResource(() => client.cluster.status(), (e) => e.type === 'instance');
  useEffect(() => {
    const timer = setInterval(() => void status.reload(), REFRESH_MS);
    return () => clearInterval(timer);
  }, []);
  const s = status.data;
  return (
    <section>
      <header class="page-header">
        <h1>Cluster</h1>
      </header>
      {status.error !== undefined && <p class="error" role="alert">{status.error}</p>}
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
            <TableHead columns={['Host', 'State', 'Address', 'Instances', 'CPUs used', 'Memory used', 'Accelerator', 'Labels']} />
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
                </tr>
              ))}
            </tbody>
          </table>
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
