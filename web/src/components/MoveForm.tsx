import { useState } from 'preact/hooks';
import { API, client, start, type Instance, type Operation } from '../api.ts';
import { message } from '../lib/format.ts';
import { useResource } from '../lib/use-resource.ts';
import { OperationProgress } from './OperationProgress.tsx';

/**
 * In a cluster: move an instance to another host (`virtnode move NAME --to HOST`): live when it runs, offline (its
 * disks copied) when it is a stopped, defined or crashed VM. The hosts offered
 * are the online ones other than its own; the daemon checks again (capacity, lease, fencing) and says why not.
 */
/** States in which a VM moves offline (as src/app/offline-states.ts; the web UI imports only api/ and client/). */
const OFFLINE: ReadonlySet<string> = new Set(['stopped', 'defined', 'crashed']);

export function MoveForm({ instance, operations }: { instance: Instance; operations: Operation[] }) {
  const cluster = useResource(() => client.cluster.status());
  const [target, setTarget] = useState('');
  const [postcopy, setPostcopy] = useState(false);
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const targets = (cluster.data?.hosts ?? []).filter((h) => h.state === 'online' && h.name !== instance.host);
  const chosen = target !== '' && targets.some((h) => h.name === target) ? target : (targets[0]?.name ?? '');
  // The newest move of this instance, whoever started it (the page may also be opened while one runs). The
  // instance is briefly unknown to this page while it changes hosts, so nothing here may live in local state.
  const op = operations.find((o) => o.kind === 'move');
  const moving = pending || op?.status === 'running';
  const submit = (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setPending(true);
    start(API.instances.move, { name: instance.name, host: chosen, postcopy: postcopy ? 'auto' : 'never' })
      .catch((err: unknown) => setError(message(err)))
      .finally(() => setPending(false));
  };
  return (
    <div class="move" data-testid="move">
      <h2>Move to another host</h2>
      {instance.state !== 'running' && !OFFLINE.has(instance.state) ? (
        <p class="muted">A move needs the instance running (live) or stopped (offline).</p>
      ) : targets.length === 0 ? (
        <p class="muted">{cluster.data === undefined ? 'loading hosts…' : 'No other host is online.'}</p>
      ) : (
        <form onSubmit={submit} aria-label={`move ${instance.name} to another host`}>
          <label>
            Host{' '}
            <select value={chosen} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)} disabled={moving}>
              {targets.map((h) => (
                <option value={h.name}>
                  {h.name} ({h.address})
                </option>
              ))}
            </select>
          </label>{' '}
          <label title="when pre-copy cannot catch up with a busy guest, it runs on the target while its memory follows; it is lost if the target fails before the end (a dropped link is recovered)">
            <input type="checkbox" checked={postcopy} onChange={(e) => setPostcopy((e.target as HTMLInputElement).checked)} disabled={moving} /> allow post-copy
          </label>{' '}
          <button type="submit" disabled={moving || chosen === ''}>
            Move
          </button>
          {instance.state !== 'running' && <span class="muted"> offline: its disks are copied</span>}
        </form>
      )}
      {error !== undefined && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {op !== undefined && <OperationProgress op={op} label={`Move of ${instance.name}`} />}
    </div>
  );
}
