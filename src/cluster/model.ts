/** The cluster's records: what lives in etcd (hosts, liveness, join tokens) and this host's cluster.json. */

/** Where each kind of record lives in the shared store. */
export const KEYS = {
  host: (name: string) => `/virtnode/hosts/${name}`,
  hosts: '/virtnode/hosts/',
  alive: (name: string) => `/virtnode/alive/${name}`,
  alives: '/virtnode/alive/',
  token: (id: string) => `/virtnode/tokens/${id}`,
  /** Left behind on HOST by a failover: its copy of NAME is to be forgotten (src/app/cluster-failover.ts). */
  leftBehind: (host: string, name: string) => `/virtnode/failover-left/${host}/${name}`,
  leftBehindOn: (host: string) => `/virtnode/failover-left/${host}/`,
  meta: '/virtnode/meta',
} as const;

/** The first hosts run etcd members (an odd number that survives one loss); later ones are clients only. */
export const MAX_ETCD_MEMBERS = 3;
export const DEFAULT_API_PORT = 7443;
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
/** A joining host whose clock is further off than this is refused (certificates, leases and tokens need time). */
export const MAX_CLOCK_SKEW_MS = 30_000;
export const TOKEN_TTL_SECONDS = 15 * 60;

/** A member of the cluster, as recorded when it joined (etcd key `/virtnode/hosts/NAME`). */
export interface HostRecord {
  name: string;
  address: string;
  /** The host's cluster API (https, cluster CA, client certificates). */
  apiUrl: string;
  /** It runs one of the etcd members. */
  etcdMember: boolean;
  etcdClientUrl?: string;
  joinedAt: string;
  /** Taken out of placement by the administrator (its instances moved away or to be). */
  evacuated?: boolean;
  /** Its certificate's serial number (hex), revoked when the host is removed (absent for hosts of older versions). */
  certSerial?: string;
}

export interface PoolCapacity {
  name: string;
  capacityBytes: number;
  availableBytes: number;
}

export interface HostCapacity {
  cpus: number;
  memoryBytes: number;
  pools: PoolCapacity[];
  accelerator: 'kvm' | 'tcg';
  qemuVersion?: string;
  cpuFlags: string[];
}

export interface HostUse {
  instances: number;
  running: number;
  /** Sums over the running instances. */
  cpus: number;
  memoryBytes: number;
}

/** What a live host publishes under its lease (etcd key `/virtnode/alive/NAME`); gone when the lease expires. */
export interface AliveRecord {
  name: string;
  since: string;
  updatedAt: string;
  capacity: HostCapacity;
  use: HostUse;
  labels: Record<string, string>;
}

/** A join token as etcd keeps it: the secret only as a hash. */
export interface TokenRecord {
  host: string;
  secretSha256: string;
  expiresAt: string;
  issuedBy: string;
}

/** This host's membership, in STATE/cluster/cluster.json. */
export interface ClusterConfig {
  clusterId: string;
  host: string;
  address: string;
  apiPort: number;
  labels: Record<string, string>;
  etcd: {
    urls: string[];
    tls: { ca: string; cert: string; key: string };
    /** Set when this host runs an etcd member (virtnode's own etcd, not an external one). */
    member?: { clientUrl: string; peerUrl: string; initialCluster: string; initialState: 'new' | 'existing' };
    external: boolean;
  };
  leaseTtlSeconds: number;
}
