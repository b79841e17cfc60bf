export type NetworkMode = 'nat' | 'isolated' | 'bridge';

/** A managed network. Host-wide names (bridge, nft table) derive from `id`, never from the name. */
export interface Network {
  name: string;
  id: string;
  mode: NetworkMode;
  /** The Linux bridge: virtnode's own (nat, isolated) or the existing one NICs join (bridge). */
  bridge: string;
  /** nat and isolated only: virtnode runs DHCP and DNS (dnsmasq) for them. */
  ipv4?: {
    subnet: string;
    gateway: string;
    dhcpStart: string;
    dhcpEnd: string;
  };
  domain?: string;
  /**
   * Set for a network defined cluster-wide (etcd `/virtnode/networks/NAME`): every host realizes it. `dhcpHost`
   * (absent: `createdOn`) runs its DHCP/DNS and gateway (nat, isolated); another host takes that role over when it
   * is offline. `vni` joins the hosts' bridges by VXLAN (nat, isolated only).
   */
  cluster?: { createdOn: string; vni?: number; dhcpHost?: string };
  createdAt: string;
}

/** The host that runs a cluster network's DHCP/DNS and gateway (undefined for a local network). */
export function dhcpHostOf(network: Network): string | undefined {
  return network.cluster === undefined ? undefined : (network.cluster.dhcpHost ?? network.cluster.createdOn);
}
