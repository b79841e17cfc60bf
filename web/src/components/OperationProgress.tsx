import { useState } from 'preact/hooks';
import { client, type Operation } from '../api.ts';
import { bytes } from '../lib/format.ts';
import { message } from '../lib/format.ts';

/** Percent done, from the percent the work reports or its bytes. */
export function percentOf(op: Operation): number | undefined {
  if (op.progress.percent !== undefined) return op.progress.percent;
  if (op.progress.bytes !== undefined && op.progress.totalBytes !== undefined && op.progress.totalBytes > 0) return (100 * op.progress.bytes) / op.progress.totalBytes;
  return undefined;
}

/** The work's own estimate of the time it still needs (a live move's, from QEMU's figures). */
function remaining(seconds: number): string {
  return seconds < 60 ? `${Math.max(1, Math.round(seconds))} s` : `${Math.round(seconds / 60)} min`;
}

/** One operation's progress as it moves (from the events stream), with a Cancel button while it runs. */
export function OperationProgress({ op, label }: { op: Operation; label: string }) {
  const [error, setError] = useState<string | undefined>();
  const percent = percentOf(op);
  const last = op.progress.entries.at(-1);
  return (
    <div class="operation" data-testid={`operation-${op.id}`} data-status={op.status}>
      <div class="operation-head">
        <strong>{label}</strong>
        <span class={`status status-${op.status}`} data-testid="operation-status">
          {op.status}
        </span>
        {op.status === 'running' && (
          <button
            type="button"
            class="danger"
            onClick={() => client.operations.cancel({ id: op.id }).then(() => setError(undefined), (e: unknown) => setError(message(e)))}
          >
            Cancel
          </button>
        )}
      </div>
      {op.status === 'running' &&
        (percent === undefined ? (
          <progress aria-label={`${label}: progress`} />
        ) : (
          <progress aria-label={`${label}: progress`} max={100} value={Math.round(percent)} />
        ))}
      <p class="muted" data-testid="operation-detail">
        {op.progress.bytes !== undefined && `${bytes(op.progress.bytes)}${op.progress.totalBytes === undefined ? '' : ` of ${bytes(op.progress.totalBytes)}`} `}
        {percent !== undefined && `(${Math.round(percent)}%) `}
        {op.status === 'running' && op.progress.expectedRemainingSeconds !== undefined && `about ${remaining(op.progress.expectedRemainingSeconds)} left; `}
        {last !== undefined && `${last.phase}: ${last.detail}`}
      </p>
      {op.error !== undefined && (
        <p class="error" data-testid="operation-error">
          {op.error.message}
        </p>
      )}
      {error !== undefined && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
