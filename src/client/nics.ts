import type { AttachedNicView } from '../api/views.ts';
import type { NicAddresses } from '../instances/addresses.ts';
import type { ApiClient } from './http.ts';

/** An instance's NICs (`virtnode nic ...`), in-process or through the daemon, with the same views. */
export interface NicApi {
  readonly via: 'local' | 'daemon';
  /** The NICs with their addresses: reservation, DHCP lease, guest agent. */
  list(instance: string): Promise<NicAddresses[]>;
  /** Adds a NIC on a managed network or `user`; hot-plugged when the instance runs. */
  attach(instance: string, network: string, ip?: string): Promise<AttachedNicView>;
  /** Removes a NIC by MAC or index; live, waits until the guest released it. */
  detach(instance: string, nic: string): Promise<AttachedNicView>;
}

const enc = encodeURIComponent;

/** The NIC API over HTTP (UNIX socket or HTTPS). */
export class RemoteNics implements NicApi {
  readonly via = 'daemon' as const;
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  async list(instance: string): Promise<NicAddresses[]> {
    return (await this.client.request<NicAddresses[]>('GET', `/instances/${enc(instance)}/nics`)).body.map(orderedNic);
  }

  async attach(instance: string, network: string, ip?: string): Promise<AttachedNicView> {
    return orderedNic((await this.client.request<AttachedNicView>('POST', `/instances/${enc(instance)}/nics`, { network, ...(ip === undefined ? {} : { ip }) })).body);
  }

  async detach(instance: string, nic: string): Promise<AttachedNicView> {
    return orderedNic((await this.client.request<AttachedNicView>('DELETE', `/instances/${enc(instance)}/nics/${enc(nic)}`)).body);
  }
}

function orderedNic<T extends AttachedNicView & { lease?: string; guest?: string[] }>(n: T): T {
  return {
    index: n.index,
    mac: n.mac,
    network: n.network,
    ...(n.reserved === undefined ? {} : { reserved: n.reserved }),
    ...(n.staticAddress === undefined ? {} : { staticAddress: n.staticAddress }),
    ...(n.lease === undefined ? {} : { lease: n.lease }),
    ...(n.guest === undefined ? {} : { guest: n.guest }),
  } as T;
}
