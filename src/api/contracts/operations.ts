/** The operations of long work: `virtnode operation ls/info/wait/cancel`, `/operations` in the REST API. */
import Type from 'typebox';
import { endpoints } from '../endpoint.ts';
import { GetOperationQuery, ListOperationsQuery, Operation, OperationParams, WaitQuery } from '../schemas.ts';

export const operationEndpoints = endpoints({
  list: {
    method: 'GET',
    path: '/operations',
    summary: 'recent operations, newest first (kept across daemon restarts: the last 1,000, for 7 days); ?status=running|succeeded|failed|cancelled, ?limit=N (default 100)',
    query: ListOperationsQuery,
    response: Type.Array(Operation),
  },
  get: { method: 'GET', path: '/operations/:id', summary: 'one operation; ?wait=SECONDS waits for it to end', params: OperationParams, query: GetOperationQuery, response: Operation },
  wait: {
    method: 'GET',
    path: '/operations/:id/wait',
    summary: 'wait for an operation to end (or for new progress with ?progressAfter=N), up to ?timeout=SECONDS (default 30)',
    params: OperationParams,
    query: WaitQuery,
    response: Operation,
  },
  cancel: { method: 'DELETE', path: '/operations/:id', summary: 'cancel a running operation', params: OperationParams, response: Operation, status: 202 },
});
