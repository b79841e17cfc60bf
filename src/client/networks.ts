import { orderedNetworkView as ordered, type NetworkLeaseView, type NetworkView } from '../api/views.ts';
import type { ApiClient } from './http.ts';

/** What `virtnode network create` asks for (POST /networks). */
export interface NetworkCreate {
  name: string;
  mode?: 'nat' | 'isolated' | 'bridge';
  subnet?: string;
  dhcpRange?: string;
  domain?: string;
  bridge?: string;
}

/**
 * The managed networks, whether the core runs in-process or behind the daemon: both return the same views, so
 * the network commands print the same either way.
 */
export interface NetworkApi {
  readonly via: 'local' | 'daemon';
  /** Every network with the instances that have a NIC on it. */
  list(): Promise<NetworkView[]>;
  /** One network with its host side (bridge, dnsmasq, nftables), instances and warnings. */
  get(name: string): Promise<NetworkView>;
  /** Creates and brings it up; the view's `warnings` say why guests may not get out. */
  create(request: NetworkCreate): Promise<NetworkView>;
  remove(name: string): Promise<void>;
  leases(name: string): Promise<NetworkLeaseView[]>;
}

const enc = encodeURIComponent;

/** The network API over HTTP (UNIX socket or HTTPS). */
export class RemoteNetworks implements NetworkApi {
  readonly via = 'daemon' as const;
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  async list(): Promise<NetworkView[]> {
    return (await this.client.request<NetworkView[]>('GET', '/networks')).body.map(ordered);
  }

  async get(name: string): Promise<NetworkView> {
    return ordered((await this.client.request<NetworkView>('GET', `/networks/${enc(name)}`)).body);
  }

  async create(request: NetworkCreate): Promise<NetworkView> {
    return ordered((await this.client.request<NetworkView>('POST', '/networks', request)).body);
  }

  async remove(name: string): Promise<void> {
    await this.client.request('DELETE', `/networks/${enc(name)}`);
  }

  async leases(name: string): Promise<NetworkLeaseView[]> {
    return (await this.client.request<NetworkLeaseView[]>('GET', `/networks/${enc(name)}/leases`)).body.map(orderedLease);
  }
}

function orderedLease(l: NetworkLeaseView): NetworkLeaseView {
  return {
    mac: l.mac,
    address: l.address,
    ...(l.hostname === undefined ? {} : { hostname: l.hostname }),
    ...(l.instance === undefined ? {} : { instance: l.instance }),
    ...(l.expires === undefined ? {} : { expires: l.expires }),
  };
}
