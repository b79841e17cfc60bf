import type { OperationView } from '../api/views.ts';
import { followOperation as follow } from './contract-client.ts';
import type { ApiClient } from './http.ts';

export type PhaseListener = (phase: string, detail: string, elapsedMs: number) => void;

/**
 * Starts an operation (a request answered 202 with an operation) and follows it to its end (contract-client.ts):
 * for the resources whose client is still written by hand; it goes with the last of them.
 */
export async function followOperation(
  client: ApiClient,
  method: string,
  path: string,
  body: unknown,
  onPhase?: PhaseListener,
  options: { signal?: AbortSignal } = {},
): Promise<unknown> {
  const op = (await client.request<OperationView>(method, path, body)).body;
  return follow(client.transport(), op, { ...(onPhase === undefined ? {} : { onPhase }), ...options });
}
