import { statePaths } from '../lib/paths.ts';
import { openDb } from '../store/db.ts';
import { InstanceService } from '../instances/service.ts';

let service: InstanceService | undefined;

/** Opens the state directory once per CLI process. */
export function instances(): InstanceService {
  if (service === undefined) {
    const paths = statePaths();
    service = new InstanceService(paths, openDb(paths.db));
  }
  return service;
}
