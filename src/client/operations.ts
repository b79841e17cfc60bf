import type { OperationView } from '../api/views.ts';
import { VirtnodeError, type ErrorCode } from '../lib/errors.ts';
import type { ApiClient } from './http.ts';

export type PhaseListener = (phase: string, detail: string, elapsedMs: number) => void;

/**
 * Starts an operation (a request answered 202 with an operation) and follows it to its end by long-polling,
 * reporting each progress entry once. Resolves to the operation's result; a failed or cancelled operation
 * rejects with the error the core raised (same code, message and hint as a local call). Aborting `signal`
 * (Ctrl-C) cancels the operation in the daemon; the wait then ends with it cancelled.
 */
export async function followOperation(
  client: ApiClient,
  method: string,
  path: string,
  body: unknown,
  onPhase?: PhaseListener,
  options: { signal?: AbortSignal } = {},
): Promise<unknown> {
  let op = (await client.request<OperationView>(method, path, body)).body;
  const id = op.id;
  const cancel = () => void client.request('DELETE', `/operations/${id}`).catch(() => {});
  if (options.signal?.aborted === true) cancel();
  else options.signal?.addEventListener('abort', cancel, { once: true });
  try {
    let shown = 0;
    for (;;) {
      for (const entry of op.progress.entries.slice(shown)) onPhase?.(entry.phase, entry.detail, entry.elapsedMs);
      shown = op.progress.entries.length;
      if (op.status !== 'running') break;
      op = (await client.request<OperationView>('GET', `/operations/${op.id}/wait?timeout=30&progressAfter=${shown}`)).body;
    }
  } finally {
    options.signal?.removeEventListener('abort', cancel);
  }
  if (op.status === 'succeeded') return op.result;
  const error = op.error ?? { code: 'INTERNAL', message: `operation ${op.id} ${op.status}` };
  throw new VirtnodeError(error.code as ErrorCode, error.message, error.hint === undefined ? {} : { hint: error.hint });
}
