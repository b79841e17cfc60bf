/**
 * The one HTTP client of the API, derived from the endpoint tables: a call becomes a request (path parameters,
 * query, body split by the endpoint's schemas), long work is followed to its end through the operation
 * resource, and answers are ordered by their schemas. It knows nothing of how bytes travel: the CLI gives it a
 * Node transport (UNIX socket or HTTPS), the web UI a `fetch` one. No Node imports.
 */
import type { Api } from '../api/contracts/index.ts';
import { API } from '../api/contracts/index.ts';
import { type CallOptions, type EndpointSpec, type HttpMethod, orderBySchema, pathParams } from '../api/endpoint.ts';
import type { OperationView } from '../api/schemas.ts';
import { type ErrorCode, VirtnodeError } from '../lib/errors.ts';

export interface Transport {
  /** One JSON request; an error answer rejects with the API's error. */
  request(method: HttpMethod, path: string, body?: unknown): Promise<unknown>;
}

/** How long one long-poll of an operation lasts at most. */
export const WAIT_SLICE_S = 30;

export function remoteApi(transport: Transport): Api {
  const api: Record<string, Record<string, unknown>> = {};
  for (const [key, table] of Object.entries(API)) {
    const calls: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(table as Record<string, EndpointSpec>)) {
      calls[name] = (input: Record<string, unknown> = {}, options: CallOptions = {}) => callEndpoint(transport, spec, input, options);
    }
    api[key] = calls;
  }
  return api as unknown as Api;
}

export async function callEndpoint(transport: Transport, spec: EndpointSpec, input: Record<string, unknown>, options: CallOptions = {}): Promise<unknown> {
  const { path, body } = requestOf(spec, input);
  if (spec.operation !== true) return orderBySchema(spec.response, await transport.request(spec.method, path, body));
  const op = (await transport.request(spec.method, path, body)) as OperationView;
  return orderBySchema(spec.response, await followOperation(transport, op, options));
}

/**
 * Starts long work without following it (a page that watches operations through the events stream): the
 * operation as it is right after it started.
 */
export async function startOperation(transport: Transport, spec: EndpointSpec, input: Record<string, unknown>): Promise<OperationView> {
  const { path, body } = requestOf(spec, input);
  return (await transport.request(spec.method, path, body)) as OperationView;
}

/** The request for a call: `:params` from the input, the query's fields as a query string, the rest as body. */
export function requestOf(spec: EndpointSpec, input: Record<string, unknown>): { path: string; body?: unknown } {
  const params = new Set(pathParams(spec.path));
  let path = spec.path.replace(/:([A-Za-z0-9_]+)/g, (_, p: string) => encodeURIComponent(String(input[p] ?? '')));
  const queryKeys = new Set(Object.keys(spec.query?.properties ?? {}));
  const query = new URLSearchParams();
  const body: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined || params.has(k)) continue;
    if (queryKeys.has(k)) query.set(k, String(v));
    else body[k] = v;
  }
  const qs = query.toString();
  if (qs !== '') path += `?${qs}`;
  return spec.body === undefined ? { path } : { path, body };
}

/**
 * Follows an operation to its end by long-polling, reporting each progress entry once and transfer progress as
 * it moves. Resolves to its result; a failed or cancelled one rejects with the error its work raised. Aborting
 * `signal` (Ctrl-C) cancels the operation; the wait then ends with it cancelled.
 */
export async function followOperation(transport: Transport, started: OperationView, options: CallOptions = {}): Promise<unknown> {
  let op = started;
  const cancel = () => void callEndpoint(transport, API.operations.cancel, { id: op.id }).catch(() => {});
  if (options.signal?.aborted === true) cancel();
  else options.signal?.addEventListener('abort', cancel, { once: true });
  try {
    let shown = 0;
    for (;;) {
      // Bytes first, then the entries: the order in which the work reported them.
      if (op.progress.bytes !== undefined) options.onTransfer?.(op.progress.bytes, op.progress.totalBytes, op.progress.expectedRemainingSeconds);
      for (const entry of op.progress.entries.slice(shown)) options.onPhase?.(entry.phase, entry.detail, entry.elapsedMs);
      shown = op.progress.entries.length;
      if (op.status !== 'running') break;
      op = (await callEndpoint(transport, API.operations.wait, { id: op.id, timeout: WAIT_SLICE_S, progressAfter: shown })) as OperationView;
    }
  } finally {
    options.signal?.removeEventListener('abort', cancel);
  }
  if (op.status === 'succeeded') return op.result;
  throw operationError(op)!;
}

/** A failed or cancelled operation as the error its work raised (same code, message and hint as in-process). */
export function operationError(op: OperationView): VirtnodeError | undefined {
  if (op.status === 'succeeded' || op.status === 'running') return undefined;
  const error = op.error ?? { code: 'INTERNAL', message: `operation ${op.id} ${op.status}` };
  return new VirtnodeError(error.code as ErrorCode, error.message, error.hint === undefined ? {} : { hint: error.hint });
}
