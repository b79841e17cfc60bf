import type { AppCore } from '../app/context.ts';
import { createAppCore } from '../app/create-app-core.ts';
import type { InstanceService } from '../instances/service.ts';
import { statePaths } from '../lib/paths.ts';

let core: AppCore | undefined;

/** The application core over the state directory, made once per CLI process. */
export function appCore(): AppCore {
  core ??= createAppCore(statePaths());
  return core;
}

/** The instance service of that core (the host-only commands: shell, exec, reconcile). */
export function instances(): InstanceService {
  return appCore().instances;
}
