import type { Accel, DiskFormat, Tuning } from '../instances/model.ts';

/** Files through which virtnode talks to one QEMU process; all live in the instance's directory. */
/** The chardev of the guest agent's virtio-serial port on QEMU's command line. */
export const GUEST_AGENT_CHARDEV = 'qga0';

export interface RuntimePaths {
  /** QMP for operations (held under the instance lock). */
  qmp: string;
  /** A second QMP monitor for quick status queries, so a long operation never blocks `list`. */
  qmpQuery: string;
  serial: string;
  serialLog: string;
  guestAgent: string;
  vnc: string;
  pidfile: string;
}

export interface QemuDisk {
  id: string;
  path: string;
  format: DiskFormat;
  readonly: boolean;
  bootIndex?: number;
  /** The PCIe port it sits on (`hotplug1`: it was attached live there); absent: QEMU's choice on the root bus. */
  bus?: string;
}

export interface PortForward {
  protocol: 'tcp' | 'udp';
  hostAddress: string;
  hostPort: number;
  guestPort: number;
}

/** A guest-only service: the guest's connections to address:port are handed to a program QEMU runs for each. */
export interface GuestForward {
  address: string;
  port: number;
  command: string[];
}

export interface QemuNic {
  id: string;
  mac: string;
  /** The PCIe port it sits on (`hotplug0`: a warm start plugs its NICs there); absent: QEMU's choice on the root bus. */
  bus?: string;
  backend:
    /** `restrict`: no traffic leaves through it (nor reaches the host's loopback at 10.0.2.2) but its forwards. */
    | { kind: 'user'; restrict?: boolean; forwards?: PortForward[]; guestForwards?: GuestForward[] }
    /** A tap virtnode created and enslaved to a bridge beforehand; QEMU only opens it (no scripts run). */
    | { kind: 'tap'; ifname: string; queues?: number };
}

/** Everything needed to start one VM, already validated and resolved (accelerator chosen, paths absolute). */
export interface QemuSpec {
  name: string;
  uuid: string;
  smbiosUuid: string;
  accel: Accel;
  cpus: number;
  memoryMiB: number;
  /**
   * KiB added to each guest RAM block beyond `memoryMiB` (the whole RAM, or each NUMA node's share): sizes are then
   * not multiples of 256 KiB, against QEMU < 9.0's TCG dirty-bitmap bug (qemu/ram-pad.ts). Part of the guest's
   * layout: a live move's target and every load of a warm state use the same. Absent: none.
   */
  memoryPadKiB?: number;
  disks: QemuDisk[];
  nics: QemuNic[];
  kernel?: { path: string; initrd?: string; cmdline?: string };
  /** SMBIOS system serial; cloud-init reads `ds=nocloud-net;s=URL` from it. */
  smbiosSerial?: string;
  /** Performance knobs (instances/tuning.ts), already checked against the host. Pinning is applied after spawn. */
  tuning?: Tuning;
  /** The machine type, resolved (`pc-q35-7.2`) where a memory state must load into the same one; default `q35`. */
  machine?: string;
  /** A VM generation ID device with this GUID (warm launches: a new GUID per restore makes the guest kernel reseed its RNG). */
  vmgenid?: string;
  /**
   * The guest's RAM as a file (a warm state's, templates/NAME/warm/memory.ram): mapped shared (`share: true`, the
   * boot that saves it: the guest's memory is the file) or private (a warm launch: copy-on-write, the file is
   * never written and its unchanged pages stay shared between the instances in the page cache).
   */
  memoryFile?: { path: string; share: boolean };
  /**
   * The RAM as the backend `ram-node0` (memory-backend-ram) even with one node and no file: the RAM block of a
   * warm-started guest, whose live move's target has no RAM file.
   */
  ramBackend?: boolean;
  /** Where hugetlbfs is mounted, when `tuning.hugepages` backs the guest's memory with huge pages. */
  hugepagePath?: string;
  /** Wait for a migration stream (a live move's destination, a warm launch's saved state): `-incoming defer`, then QMP `migrate-incoming`, instead of booting. */
  incoming?: 'defer';
  paths: RuntimePaths;
}
