import type { OperationStatus, OperationView } from '../api/views.ts';
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
  throw operationError(op)!;
}

export interface OperationQuery {
  limit?: number;
  status?: OperationStatus;
}

/**
 * `virtnode operation ...`, whether through the daemon (which runs the operations) or in this process (which
 * reads the same table: finished operations, and what a stopped daemon left).
 */
export interface OperationApi {
  readonly via: 'local' | 'daemon';
  list(query: OperationQuery): Promise<OperationView[]>;
  get(id: string): Promise<OperationView>;
  /** Until it ends, or `timeoutMs` passes (then it answers with the operation as it is: still running). */
  wait(id: string, timeoutMs: number): Promise<OperationView>;
  cancel(id: string): Promise<OperationView>;
}

const WAIT_SLICE_S = 30;

/** The operation API over HTTP (UNIX socket or HTTPS). */
export class RemoteOperations implements OperationApi {
  readonly via = 'daemon' as const;
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  async list(query: OperationQuery): Promise<OperationView[]> {
    const params = new URLSearchParams();
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.status !== undefined) params.set('status', query.status);
    const qs = params.toString();
    return (await this.client.request<OperationView[]>('GET', `/operations${qs === '' ? '' : `?${qs}`}`)).body;
  }

  async get(id: string): Promise<OperationView> {
    return (await this.client.request<OperationView>('GET', `/operations/${encodeURIComponent(id)}`)).body;
  }

  async wait(id: string, timeoutMs: number): Promise<OperationView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = Math.max(0, deadline - Date.now());
      const slice = Math.min(WAIT_SLICE_S, Math.ceil(left / 1000));
      const op = (await this.client.request<OperationView>('GET', `/operations/${encodeURIComponent(id)}/wait?timeout=${slice}`)).body;
      if (op.status !== 'running' || Date.now() >= deadline) return op;
    }
  }

  async cancel(id: string): Promise<OperationView> {
    return (await this.client.request<OperationView>('DELETE', `/operations/${encodeURIComponent(id)}`)).body;
  }
}

/** A failed or cancelled operation as the error its work raised (same code, message and hint as the daemon's). */
export function operationError(op: OperationView): VirtnodeError | undefined {
  if (op.status === 'succeeded' || op.status === 'running') return undefined;
  const error = op.error ?? { code: 'INTERNAL', message: `operation ${op.id} ${op.status}` };
  return new VirtnodeError(error.code as ErrorCode, error.message, error.hint === undefined ? {} : { hint: error.hint });
}
