import { reconcile } from '../app/reconcile.ts';
import { createCoreContext } from '../core/context.ts';
import { statePaths } from '../lib/paths.ts';
import { InstanceService } from '../instances/service.ts';

let service: InstanceService | undefined;

/** Opens the state directory once per CLI process. */
export function instances(): InstanceService {
  if (service === undefined) {
    service = new InstanceService(createCoreContext(statePaths(), { reconcile }));
  }
  return service;
}
