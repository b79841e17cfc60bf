/** The port-forward contract, implemented once over the core: live when the instance runs, kept for later starts. */
import { portEndpoints } from '../api/contracts/ports.ts';
import { portForwardView, portForwardViews } from './views.ts';
import { validateName } from '../lib/names.ts';
import type { AppCore } from './context.ts';
import { resource } from './resource.ts';

export const ports = resource('ports', portEndpoints, (core: AppCore) => {

  return {
    async list({ name }) {
      return portForwardViews(await core.instances.get(validateName('name', name)));
    },

    async add({ name, ports, address }) {
      const { addPortForward } = await import('../instances/port-forward.ts');
      return core.changed(portForwardView(await addPortForward(core.instances, validateName('name', name), ports, address ?? '127.0.0.1')));
    },

    async remove({ name, port }) {
      const { removePortForward } = await import('../instances/port-forward.ts');
      return core.changed(portForwardView(await removePortForward(core.instances, validateName('name', name), port)));
    },
  };
});
