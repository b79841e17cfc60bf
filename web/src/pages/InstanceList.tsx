import type { Live } from '../store.ts';
import { Actions } from '../components/Actions.tsx';
import { TableHead } from '../components/TableHead.tsx';

export function InstanceList({ live, onError }: { live: Live; onError: (m: string) => void }) {
  const instances = [...live.instances.values()].sort((a, b) => a.name.localeCompare(b.name));
  // In a cluster the list spans its hosts: say which one runs each instance.
  const hosts = instances.some((i) => i.host !== undefined);
  return (
    <section>
      <header class="page-header">
        <h1>Instances</h1>
        <a class="button" href="#/launch">
          Launch
        </a>
      </header>
      {live.error !== undefined && <p class="error">{live.error}</p>}
      {live.loaded && instances.length === 0 && <p class="muted">No instances yet.</p>}
      {instances.length > 0 && (
        <table class="instances">
          <TableHead columns={['Name', ...(hosts ? ['Host'] : []), 'State', 'CPUs', 'Memory', 'Image / kernel', 'SSH']} actions />
          <tbody>
            {instances.map((i) => (
              <tr data-testid={`instance-${i.name}`}>
                <td>
                  <a href={`#/instances/${i.name}`}>{i.name}</a>
                </td>
                {hosts && <td data-testid="host">{i.host ?? '–'}</td>}
                <td>
                  <span class={`state state-${i.state}`} data-testid="state" title={i.reason ?? ''}>
                    {i.state}
                  </span>
                </td>
                <td>{i.cpus}</td>
                <td>{i.memoryMiB} MiB</td>
                <td>{i.image?.name ?? (i.boot !== undefined ? 'kernel' : '–')}</td>
                <td>{i.ssh?.address ?? '–'}</td>
                <td>
                  <Actions instance={i} onError={onError} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
