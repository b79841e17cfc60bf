/** The operation contract, implemented once over the core's operation log (the daemon's manager, or its table). */
import { operationEndpoints } from '../api/contracts/operations.ts';
import type { AppCore } from './context.ts';
import { resource } from './resource.ts';

const LIST_DEFAULT_LIMIT = 100;
const WAIT_DEFAULT_S = 30;

export const operations = resource('operations', operationEndpoints, (core: AppCore) => {
  const log = core.operations;
  return {
    async list({ limit, status }) {
      return log.list({ limit: limit ?? LIST_DEFAULT_LIMIT, ...(status === undefined ? {} : { status }) });
    },

    async get({ id, wait }) {
      return wait === undefined || wait === 0 ? log.get(id) : log.wait(id, wait * 1000);
    },

    async wait({ id, timeout, progressAfter }) {
      return log.wait(id, (timeout ?? WAIT_DEFAULT_S) * 1000, progressAfter);
    },

    async cancel({ id }) {
      return log.cancel(id);
    },
  };
});
