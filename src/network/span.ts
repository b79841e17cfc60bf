import type { Network } from './model.ts';

/** A NIC on a cluster-wide network as every host sees it (etcd): who has it, and the address reserved for it. */
export interface SpanNic {
  mac: string;
  /** nat/isolated: the address DHCP reserves for the MAC (unique cluster-wide). */
  address?: string;
  /** The instance name (its DNS name on the network). */
  hostname: string;
}

/**
 * What the network service needs of a cluster to span networks across its hosts. Implemented over etcd by the
 * application layer (src/app/cluster-networks.ts); absent on a standalone host, where every network is local.
 */
export interface NetworkSpan {
  /** This host's name and cluster address (the VXLAN's local end); undefined while the host is in no cluster. */
  self(): { host: string; address: string } | undefined;
  /** False while this host is fenced (it lost its cluster lease): it then serves no network's DHCP/DNS and gateway. */
  holdsLease(): boolean;
  /** Every cluster network's definition. */
  definitions(): Promise<Network[]>;
  /** One network's definition as the cluster has it now (undefined: gone). */
  definition(name: string): Promise<Network | undefined>;
  /**
   * Records a new definition: refused (CONFLICT naming `name`, `vni` or `--subnet`, as the host's own checks do) if the name or the VNI is taken,
   * or its subnet overlaps another network's.
   */
  define(network: Network): Promise<void>;
  /** Removes a definition and every record of it. */
  undefine(network: Network): Promise<void>;
  /**
   * When the network's DHCP host is offline and this host online: this host takes the role over (one host wins).
   * Answers the definition as it is then (undefined: gone).
   */
  takeOverDhcp(name: string): Promise<Network | undefined>;
  /** The addresses of the online peer hosts (the VXLAN's flood list). */
  peers(): Promise<string[]>;
  /**
   * Records this host's NICs on the network (their addresses claimed cluster-wide: CONFLICT if another host holds
   * one) and answers every host's, for the DHCP host's reservations and DNS records.
   */
  publish(network: Network, nics: SpanNic[]): Promise<SpanNic[]>;
  /** The instances other hosts have a NIC on the network for, with their host (sorted). */
  usersElsewhere(network: string): Promise<Array<{ instance: string; host: string }>>;
  /** Addresses other hosts hold on the network (address -> who, and the MAC), as last read by `refreshTaken`. */
  takenElsewhere(network: string): Map<string, { owner: string; mac: string }>;
  refreshTaken(networks: readonly string[]): Promise<void>;
}
