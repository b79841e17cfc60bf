/** What the daemon does when an instance's guest stops or crashes on its own. */
export type RestartPolicy = 'no' | 'on-failure' | 'always';

/** States an instance moves through; the transitional ones (creating, starting, stopping, deleting) are
 * always held under the instance's lock, so a transitional state with no live lock owner means a crash. */
export type InstanceState =
  | 'creating'
  | 'defined'
  | 'starting'
  | 'running'
  | 'paused'
  | 'stopping'
  | 'stopped'
  | 'crashed'
  | 'deleting';

export const TRANSITIONAL_STATES: ReadonlySet<InstanceState> = new Set(['creating', 'starting', 'stopping', 'deleting']);
/** States in which a QEMU process is expected to exist. */
export const ACTIVE_STATES: ReadonlySet<InstanceState> = new Set(['starting', 'running', 'paused', 'stopping']);

/** A VM (QEMU) or a system container (LXC): recorded with the instance, it picks the driver (drivers/index.ts). */
export type InstanceType = 'vm' | 'container';
export const INSTANCE_TYPES: readonly InstanceType[] = ['vm', 'container'];

export type Accel = 'kvm' | 'tcg';
export type AccelRequest = Accel | 'auto';
export type DiskFormat = 'qcow2' | 'raw';

export interface DiskSpec {
  id: string;
  path: string;
  format: DiskFormat;
  /** Created by virtnode inside the instance directory, deleted with the instance. */
  owned: boolean;
  readonly?: boolean;
  /** The storage volume this disk is (`virtnode disk attach`); `path` is the volume's file or an overlay on it. */
  volume?: string;
}

export interface KernelBoot {
  kernel: string;
  initrd?: string;
  cmdline?: string;
}

/** Where a launched instance came from; its disk is a qcow2 overlay on this image. */
export interface ImageRef {
  name: string;
  sha256: string;
  path: string;
}

/** How virtnode reaches a launched guest over SSH (user-mode networking: a forwarded loopback port). */
export interface SshAccess {
  user: string;
  /** virtnode's own client key, always authorized in the guest, so `shell` and `exec` work. */
  identityFile: string;
  guestPort: number;
  /** Allocated at each start; the known_hosts entry follows it. */
  hostPort?: number;
  /** Reached directly at this address on a managed network (containers), not through a forwarded loopback port. */
  address?: string;
  hostKeyFingerprints: string[];
  hostPublicKeys: string[];
}

export interface InstanceSpec {
  cpus: number;
  memoryMiB: number;
  accel: AccelRequest;
  disks: DiskSpec[];
  boot?: KernelBoot;
  image?: ImageRef;
  ssh?: SshAccess;
  /** NoCloud over HTTP: the seed files live here and are served to this guest only (no seed disk). */
  httpSeedDir?: string;
  /** The cloud-init instance-id: fresh per instance, stable across restarts. */
  instanceId?: string;
  /** The last readiness result recorded by launch (cloud-init's own verdict included). */
  readiness?: { phase: string; detail: string; at: string };
  /** User-mode port forwards (`virtnode port add`), on the first user-mode NIC. */
  portForwards?: PortForwardSpec[];
  /** Performance knobs (CPU model, pinning, NUMA, huge pages, disk and NIC queues...), checked before each start. */
  tuning?: Tuning;
  /** System containers only: their root filesystem and what they may do. */
  container?: ContainerSpec;
  /**
   * VMs: how its QEMU runs now, recorded at each start (not configuration): a live move's target starts its QEMU
   * with the same layout, and the record goes with the guest. Absent: started before virtnode recorded it.
   */
  runtime?: InstanceRuntime;
}

/** How a VM's running QEMU was started, where it matters beyond this host (qemu/ram-pad.ts). */
export interface InstanceRuntime {
  accel: Accel;
  /** The QEMU release it was started with (`7.2.22`); empty when unknown. */
  qemuVersion: string;
  /**
   * KiB added to each guest RAM block beyond the configured memory (the whole RAM, or each NUMA node's share),
   * against QEMU < 9.0's TCG dirty-bitmap bug; absent: none. The guest sees this much more RAM; everything virtnode
   * reports keeps the configured size.
   */
  memoryPadKiB?: number;
  /** Started warm (a template's saved guest loaded): the device model a live move's target must build; absent: a cold start. */
  warm?: WarmRuntime;
}

/**
 * What a warm start's QEMU has beyond a cold start's (drivers/qemu/warm.ts): kept until the next (cold) start, so
 * a live move's target builds the same device model and the guest sees no new generation.
 */
export interface WarmRuntime {
  /** The resolved machine type the state was saved with (`pc-q35-7.2`). */
  machine: string;
  /** The VM generation ID device's GUID given at the load (a move keeps it: it is not a clone). */
  vmgenid: string;
  /** The RAM is the backend `ram-node0` (the warm state's RAM file), not QEMU's default `pc.ram`. */
  ramBackend?: boolean;
}

export interface ContainerSpec {
  /** The image's unpacked root filesystem (read-only lower layer, shared by every container of that image). */
  lowerDir: string;
  /** Root in the container is this host uid/gid (65536 ids from it); undefined: privileged (host root). */
  idmapBase: number | undefined;
  /** The most processes (and threads) the container may have at once. */
  maxProcesses: number;
  /**
   * The most its own files may take (`--disk-size`): its writable layer is then an ext4 image of this size
   * (drivers/lxc/layer.ts); undefined: a plain directory on the host's filesystem, with no limit.
   */
  diskSizeBytes?: number;
}

/** `user` (QEMU's user-mode NAT, no root needed) or the name of a managed network (`virtnode network ls`). */
export type NicNetwork = string;

export const USER_NETWORK = 'user';
/** QEMU's user-mode network gives each guest this address (its gateway, the host, is 10.0.2.2). */
export const USER_MODE_GUEST_ADDRESS = '10.0.2.15';

export interface Nic {
  index: number;
  mac: string;
  network: NicNetwork;
  /** Managed nat/isolated networks: the address reserved for this NIC in the network's DHCP (and DNS). */
  address?: string;
  /** The address was asked for (--ip) and is configured statically through cloud-init network-config. */
  staticAddress?: boolean;
}

/** User-mode port forwards kept with the instance, applied at every start and live through QMP. */
export interface PortForwardSpec {
  protocol: 'tcp' | 'udp';
  hostAddress: string;
  hostPort: number;
  guestPort: number;
}

export interface Instance {
  name: string;
  type: InstanceType;
  uuid: string;
  smbiosUuid: string;
  state: InstanceState;
  stateReason: string | undefined;
  spec: InstanceSpec;
  nics: Nic[];
  pid: number | undefined;
  pidStart: string | undefined;
  createdAt: string;
  updatedAt: string;
}

export const DISK_CACHE_MODES = ['none', 'writeback', 'writethrough', 'directsync', 'unsafe'] as const;
export const DISK_AIO_MODES = ['threads', 'native', 'io_uring'] as const;
export type DiskCacheMode = (typeof DISK_CACHE_MODES)[number];
export type DiskAioMode = (typeof DISK_AIO_MODES)[number];

/** The performance knobs of one VM. Every field is optional; an absent one keeps QEMU's (and virtnode's) default. */
export interface Tuning {
  /** A QEMU CPU model (`qemu-system-x86_64 -cpu help`), instead of `host` (KVM) or `max` (TCG). */
  cpuModel?: string;
  /** The host CPU each vCPU thread runs on, one per vCPU. */
  vcpuPins?: number[];
  /** The host CPUs QEMU's other threads (main loop, I/O workers) run on. */
  emulatorPins?: number[];
  /** Guest NUMA nodes: vCPUs and memory split evenly between them. */
  numaNodes?: number;
  /** Guest memory from the host's free huge pages (allocated at start, never swapped). */
  hugepages?: boolean;
  diskCache?: DiskCacheMode;
  diskAio?: DiskAioMode;
  /** The guest's discard (TRIM) frees space in the disk file. */
  discard?: boolean;
  /** One I/O thread per disk, so disk work leaves QEMU's main loop. */
  iothreads?: boolean;
  /** virtio-blk request queues per disk. */
  diskQueues?: number;
  /** virtio-net queue pairs per NIC on a managed network (tap). */
  netQueues?: number;
  /** The guest gives freed memory back to the host (virtio-balloon free page reporting). */
  freePageReporting?: boolean;
}

/** Cache modes that open the disk file with O_DIRECT. */
export function usesDirectIo(cache: DiskCacheMode | undefined): boolean {
  return cache === 'none' || cache === 'directsync';
}

/** A live move's `downtimeLimitMs`: the range accepted, and the default. */
export const MOVE_DOWNTIME_LIMIT_MS = {
  min: 1,
  max: 60_000,
  /**
   * QEMU's `downtime-limit`: it stops the guest for the last round once what is left fits this time at the bandwidth
   * it measured. QEMU's own default (300 ms) let an idle guest's last round take 100-300 ms on a loaded host; 30 ms
   * costs an idle guest one more cheap round (measured: downtime 11-42 ms against 15-189 ms, total time the same,
   * bench/README.md); a busy guest is slowed down (auto-converge) or switched to post-copy a little sooner.
   */
  default: 30,
} as const;
