import { networkLeaseView, networkView, type NetworkLeaseView, type NetworkView } from '../../api/views.ts';
import type { NetworkApi, NetworkCreate } from '../../client/networks.ts';
import type { InstanceService } from '../../instances/service.ts';
import { validateName } from '../../lib/ids.ts';
import type { NetworkService } from '../../network/service.ts';

/** The network API in this process: the core called directly (no daemon running, or not reachable). */
export class LocalNetworks implements NetworkApi {
  readonly via = 'local' as const;
  private readonly service: InstanceService;

  constructor(service: InstanceService) {
    this.service = service;
  }

  /** The network service after reconcile (which brings networks back after a reboot), as the daemon has it. */
  private async networks(): Promise<NetworkService> {
    await this.service.ensureReconciled();
    return this.service.networks;
  }

  private instancesOn(networks: NetworkService, name: string): string[] {
    return [...new Set(networks.instances.nicsOn(name).map((x) => x.instance))];
  }

  async list(): Promise<NetworkView[]> {
    const networks = await this.networks();
    return networks.list().map((n) => networkView(n, undefined, this.instancesOn(networks, n.name)));
  }

  async get(name: string): Promise<NetworkView> {
    const networks = await this.networks();
    const n = networks.mustGet(validateName('name', name));
    return networkView(n, await networks.status(n));
  }

  async create(request: NetworkCreate): Promise<NetworkView> {
    const networks = await this.networks();
    const { network } = await networks.create(request);
    return networkView(network, await networks.status(network));
  }

  async remove(name: string): Promise<void> {
    await (await this.networks()).remove(validateName('name', name));
  }

  async leases(name: string): Promise<NetworkLeaseView[]> {
    const networks = await this.networks();
    const byMac = new Map(networks.instances.nicsOn(validateName('name', name)).map((n) => [n.mac, n.instance]));
    return networks.leases(name).map((l) => networkLeaseView(l, byMac.get(l.mac)));
  }
}
