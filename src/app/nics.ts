/**
 * The NIC contract, implemented once over the core: live through QMP when the instance runs, recorded for the
 * next start when it is stopped; each change takes the instance lock.
 */
import { nicEndpoints } from '../api/contracts/nics.ts';
import { attachedNicView } from './views.ts';
import { validateName } from '../lib/names.ts';
import type { AppCore } from './context.ts';
import { resource } from './resource.ts';

export const nics = resource('nics', nicEndpoints, (core: AppCore) => {

  return {
    async list({ name }) {
      const { nicAddresses } = await import('../instances/addresses.ts');
      return nicAddresses(core.instances, await core.instances.get(validateName('name', name)), { agent: true });
    },

    async attach({ name, network, ip }) {
      const { attachNic } = await import('../instances/nics.ts');
      return core.changed(attachedNicView(await attachNic(core.instances, validateName('name', name), network, ip)));
    },

    async detach({ name, nic }) {
      const { detachNic } = await import('../instances/nics.ts');
      return core.changed(attachedNicView(await detachNic(core.instances, validateName('name', name), nic)));
    },
  };
});
