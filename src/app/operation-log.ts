/**
 * Where the API's operations are kept, as the application layer sees it (the port behind `/operations`). The
 * daemon fills it with its OperationManager, which runs them; a CLI call without a daemon with the table the
 * daemon writes (operation-table.ts): finished operations, and what a stopped daemon left.
 */
import type { OperationStatus, OperationView } from '../api/schemas.ts';
import { VirtnodeError } from '../lib/errors.ts';

export interface OperationLog {
  /** Newest first; running ones with their latest progress. */
  list(query: { limit: number; status?: OperationStatus }): OperationView[];
  get(id: string): OperationView;
  /** Returns when it ends, when it has more than `progressAfter` progress entries, or after `timeoutMs` (as it is then). */
  wait(id: string, timeoutMs: number, progressAfter?: number): Promise<OperationView>;
  /** Asks a running operation to stop (the work honours the signal where it can); returns at once. */
  cancel(id: string): OperationView;
}

export function operationNotFound(id: string): VirtnodeError {
  return new VirtnodeError('NOT_FOUND', `operation ${id} does not exist`, { hint: 'operations are kept for 7 days after they end (the last 1,000): see `virtnode operation ls`' });
}
