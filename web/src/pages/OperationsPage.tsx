import { useState } from 'preact/hooks';
import { client, type Operation } from '../api.ts';
import { FormError } from '../components/Field.tsx';
import { Listing } from '../components/Listing.tsx';
import { percentOf } from '../components/OperationProgress.tsx';
import { bytes, message, when } from '../lib/format.ts';
import { useResource } from '../lib/use-resource.ts';
import type { Live } from '../store.ts';
import { TableHead } from '../components/TableHead.tsx';

const STATUSES = ['all', 'running', 'succeeded', 'failed', 'cancelled'] as const;
type StatusFilter = (typeof STATUSES)[number];

function Progress({ op }: { op: Operation }) {
  const percent = percentOf(op);
  const last = op.progress.entries.at(-1);
  return (
    <>
      {op.status === 'running' && (percent === undefined ? <progress aria-label={`${op.kind} progress`} /> : <progress aria-label={`${op.kind} progress`} max={100} value={Math.round(percent)} />)}
      <div class="muted">
        {op.progress.bytes !== undefined && `${bytes(op.progress.bytes)}${op.progress.totalBytes === undefined ? '' : ` of ${bytes(op.progress.totalBytes)}`} `}
        {percent !== undefined && `${Math.round(percent)}% `}
        {last !== undefined && `${last.phase}: ${last.detail}`}
      </div>
    </>
  );
}

/** The operations log (Proxmox's task log): running and recent long work, live, cancellable. */
export function OperationsPage({ live }: { live: Live }) {
  const [status, setStatus] = useState<StatusFilter>('all');
  const [error, setError] = useState<string | undefined>();
  const [open, setOpen] = useState<string | undefined>();
  // The list once (and after a reconnect); the events stream keeps it current.
  const recent = useResource(() => client.operations.list({ limit: 200 }));
  const merged = new Map<string, Operation>();
  for (const op of recent.data ?? []) merged.set(op.id, op);
  for (const op of live.operations.values()) merged.set(op.id, op);
  const ops = [...merged.values()].filter((op) => status === 'all' || op.status === status).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const cancel = (op: Operation) => {
    setError(undefined);
    client.operations.cancel({ id: op.id }).catch((e: unknown) => setError(message(e)));
  };
  return (
    <section>
      <header class="page-header">
        <h1>Operations</h1>
        <span class="inline">
          <label for="operation-status">Show</label>
          <select id="operation-status" name="status" value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value as StatusFilter)}>
            {STATUSES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </span>
      </header>
      <FormError error={error ?? recent.error} />
      <Listing items={recent.data === undefined ? undefined : ops} empty="No operations.">
        {(items) => (
          <table data-testid="operations">
            <TableHead columns={['Started', 'Kind', 'Target', 'Status', 'Progress / result', 'Ended', 'Started by']} actions />
            <tbody>
              {items.map((op) => (
                <>
                  <tr data-operation={op.id} data-kind={op.kind} data-status={op.status}>
                    <td>{when(op.createdAt)}</td>
                    <td>{op.kind}</td>
                    <td class="wrap">{op.target ?? '–'}</td>
                    <td>
                      <span class={`status status-${op.status}`}>{op.status}</span>
                    </td>
                    <td class="wrap">
                      {op.error !== undefined ? (
                        <span class="error" data-testid="operation-error">
                          {op.error.code}: {op.error.message}
                        </span>
                      ) : (
                        <Progress op={op} />
                      )}
                    </td>
                    <td>{when(op.finishedAt)}</td>
                    <td data-testid="started-by">{op.startedBy === undefined ? '–' : op.startedBy.replace(/^token:/, 'token ')}</td>
                    <td class="actions">
                      <button type="button" aria-expanded={open === op.id} aria-label={`Steps of ${op.kind} ${op.target ?? op.id}`} onClick={() => setOpen(open === op.id ? undefined : op.id)}>
                        Steps
                      </button>
                      {op.status === 'running' && (
                        <button type="button" class="danger" aria-label={`Cancel ${op.kind} ${op.target ?? op.id}`} onClick={() => cancel(op)}>
                          Cancel
                        </button>
                      )}
                    </td>
                  </tr>
                  {open === op.id && (
                    <tr>
                      <td colSpan={8}>
                        {op.progress.entries.length === 0 ? (
                          <p class="muted">No steps reported.</p>
                        ) : (
                          <ol class="steps">
                            {op.progress.entries.map((e) => (
                              <li>
                                {(e.elapsedMs / 1000).toFixed(1)} s — {e.phase}: {e.detail}
                              </li>
                            ))}
                          </ol>
                        )}
                        {op.result !== undefined && <pre class="result" tabIndex={0} aria-label="result">{JSON.stringify(op.result, null, 2)}</pre>}
                      </td>
                    </tr>
                  )}
                </>
              ))}
            </tbody>
          </table>
        )}
      </Listing>
    </section>
  );
}
