import type { OperationApi } from '../../client/operations.ts';
import { chooseBackend } from '../backend.ts';

let operations: Promise<OperationApi> | undefined;

/** `virtnode operation ...`: through the daemon when it runs, else the operations table read in this process. */
export function operationApi(): Promise<OperationApi> {
  operations ??= chooseBackend<OperationApi>(
    async () => {
      const [{ LocalOperations }, { statePaths }, { openDb }] = await Promise.all([import('./local-operations.ts'), import('../../lib/paths.ts'), import('../../store/db.ts')]);
      return new LocalOperations(openDb(statePaths().db));
    },
    async (client) => new (await import('../../client/operations.ts')).RemoteOperations(client),
  );
  return operations;
}
