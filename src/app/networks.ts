/** The network contract, implemented once over the core (the daemon's routes and the CLI both call this). */
import { networkEndpoints } from '../api/contracts/networks.ts';
import { networkLeaseView, networkView } from './views.ts';
import { validateName } from '../lib/names.ts';
import type { NetworkLeaseView } from '../api/schemas.ts';
import type { PeerRoute } from '../cluster/peer-http.ts';
import { dhcpHostOf, type Network } from '../network/model.ts';
import type { NetworkService } from '../network/service.ts';
import { clusterOf } from './cluster-of.ts';
import type { AppCore } from './context.ts';
import { resource } from './resource.ts';

/** Where a cluster network's DHCP host answers its leases to the other hosts. */
export const NETWORK_LEASES_PEER_PATH = '/v1/network-leases';

/** This host's dnsmasq's leases of the network, each with the instance (of any host) whose NIC has the MAC. */
async function localLeases(s: NetworkService, network: Network): Promise<NetworkLeaseView[]> {
  const byMac = new Map(s.instances.nicsOn(network.name).map((n) => [n.mac, n.instance]));
  if (network.cluster !== undefined) for (const n of await s.clusterNics(network)) if (!byMac.has(n.mac)) byMac.set(n.mac, n.hostname.replace(/-nic\d+$/, ''));
  return s.leases(network.name).map((l) => networkLeaseView(l, byMac.get(l.mac)));
}

/** The cluster API route answering a cluster network's leases on its DHCP host. */
export function networkLeasesPeerRoute(core: AppCore): PeerRoute {
  return {
    handle: async (body) => {
      const name = validateName('name', String((body as { name?: unknown } | null)?.name ?? ''));
      return localLeases(core.instances.networks, core.instances.networks.mustGet(name));
    },
  };
}

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
      const network = s.mustGet(validateName('name', name));
      // A cluster network's leases are its DHCP host's: asked there (it names the instances of every host).
      const c = network.cluster?.vni === undefined ? undefined : await clusterOf(core);
      const dhcpHost = dhcpHostOf(network);
      if (c !== undefined && dhcpHost !== undefined && dhcpHost !== c.host) {
        return c.peer<NetworkLeaseView[]>(dhcpHost, NETWORK_LEASES_PEER_PATH, { name: network.name });
      }
      return localLeases(s, network);
    },

    async delete({ name }) {
      await (await service()).remove(validateName('name', name));
      return { name, deleted: true };
    },
  };
});
