/** The network contract, implemented once over the core (the daemon's routes and the CLI both call this). */
import { networkEndpoints } from '../api/contracts/networks.ts';
import { networkLeaseView, networkView } from './views.ts';
import { validateName } from '../lib/ids.ts';
import type { Network } from '../network/model.ts';
import type { NetworkService } from '../network/service.ts';
import { clusterOf } from './cluster-of.ts';
import type { AppCore } from './context.ts';
import { resource } from './resource.ts';

export const networks = resource('networks', networkEndpoints, (core: AppCore) => {
  /**
   * The network service after reconcile, which brings networks back after a reboot; in a cluster, with the
   * cluster's network definitions recorded here (each host's daemon also keeps them up to date as they change).
   */
  const service = async (): Promise<NetworkService> => {
    await core.instances.ensureReconciled();
    if ((await clusterOf(core)) !== undefined) await core.instances.networks.pullCluster();
    return core.instances.networks;
  };
  /** Its instances here and, for a cluster network, on the other hosts (as etcd records them). */
  const instancesOn = async (s: NetworkService, n: Network) => [...new Set([...s.instances.nicsOn(n.name).map((x) => x.instance), ...(await s.usersElsewhere(n))])];

  return {
    async list() {
      const s = await service();
      return Promise.all(s.list().map(async (n) => networkView(n, undefined, await instancesOn(s, n))));
    },

    async get({ name }) {
      const s = await service();
      const n = s.mustGet(validateName('name', name));
      const status = await s.status(n);
      return networkView(n, { ...status, instances: await instancesOn(s, n) });
    },

    async create(request) {
      const s = await service();
      const { network } = await s.create(request);
      return networkView(network, await s.status(network));
    },

    async leases({ name }) {
      const s = await service();
      const byMac = new Map(s.instances.nicsOn(validateName('name', name)).map((n) => [n.mac, n.instance]));
      return s.leases(name).map((l) => networkLeaseView(l, byMac.get(l.mac)));
    },

    async delete({ name }) {
      await (await service()).remove(validateName('name', name));
      return { name, deleted: true };
    },
  };
});
