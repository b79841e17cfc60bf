/**
 * JSON Schemas (typebox) of the REST API: request validation, response serialization and the OpenAPI document
 * come from these, and every wire type is `Static<>` of one of them (no hand-written copy of a shape). Objects
 * declare their properties in display order: answers are ordered by their schema (orderBySchema).
 */
import Type, { type Static, type TObject, type TObjectOptions, type TProperties, type TSchema } from 'typebox';

/** The rule of src/lib/ids.ts validateName: a DNS label (so no `/`, `.` or `..` can reach a path). */
export const NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';

/**
 * A string from a fixed set. Plain `enum` rather than a union of literals: fast-json-stringify serializes a
 * union (anyOf) by validating every branch, which made listing 1,000 instances several times slower.
 */
export function StringEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** An object that refuses properties it does not declare: a body with a typo is a 400, an answer carries only these. */
export function Closed<T extends TProperties>(properties: T, options: TObjectOptions = {}): TObject<T> {
  return Type.Object(properties, { ...options, additionalProperties: false });
}

// No minLength/maxLength: the pattern allows 1-63 characters already, and a length keyword failing first would
// answer fastify's message instead of the CLI's (src/daemon/errors.ts maps a pattern failure to validateName's).
export const Name = Type.String({ pattern: NAME_PATTERN, description: 'a DNS label: 1-63 lowercase letters, digits and hyphens' });
export const NameParams = Closed({ name: Name });

/**
 * A name in a path or body that the core validates itself (as a DNS label), so the error names the field as the
 * CLI does (`volume: "X" is not a valid name`); a schema pattern would name the URL parameter instead.
 */
export const CheckedName = Type.String({ description: 'a DNS label (1-63 lowercase letters, digits and hyphens), checked by virtnode' });

export const ErrorBody = Closed({
  error: Closed({
    code: Type.String({ description: 'stable error code (INVALID, NOT_FOUND, CONFLICT, INVALID_STATE, BUSY, ...)' }),
    message: Type.String(),
    hint: Type.Optional(Type.String()),
    field: Type.Optional(Type.String()),
  }),
});
export type ErrorBodyType = Static<typeof ErrorBody>;

/** Performance knobs of a VM (src/instances/tuning.ts checks them against the host before anything starts). */
export const Tuning = Closed({
  cpuModel: Type.Optional(Type.String({ maxLength: 64, description: 'a QEMU CPU model (qemu-system-x86_64 -cpu help); default host (KVM) or max (TCG)' })),
  vcpuPins: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: 8191 }), { minItems: 1, maxItems: 1024, description: 'the host CPU of each vCPU, in vCPU order' })),
  emulatorPins: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: 8191 }), { minItems: 1, maxItems: 1024, description: "host CPUs for QEMU's other threads" })),
  numaNodes: Type.Optional(Type.Integer({ minimum: 1, maximum: 8, description: 'guest NUMA nodes; vCPUs and memory split evenly' })),
  hugepages: Type.Optional(Type.Boolean({ description: "back guest memory with the host's free huge pages" })),
  diskCache: Type.Optional(StringEnum(['none', 'writeback', 'writethrough', 'directsync', 'unsafe'])),
  diskAio: Type.Optional(StringEnum(['threads', 'native', 'io_uring'])),
  discard: Type.Optional(Type.Boolean({ description: "the guest's discard (TRIM) frees space in the disk file" })),
  iothreads: Type.Optional(Type.Boolean({ description: 'one I/O thread per disk' })),
  diskQueues: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, description: 'virtio-blk queues per disk' })),
  netQueues: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, description: 'virtio-net queue pairs per NIC on a managed network' })),
  freePageReporting: Type.Optional(Type.Boolean({ description: 'the guest returns freed memory to the host' })),
});

const InstanceState = StringEnum(['creating', 'defined', 'starting', 'running', 'paused', 'stopping', 'stopped', 'crashed', 'deleting', 'unknown'], {
  description: "unknown: in a cluster, its host is offline or did not answer (what is shown comes from the cluster's records in etcd)",
});
export const RestartPolicy = StringEnum(['no', 'on-failure', 'always']);

const InstanceType = StringEnum(['vm', 'container'], { description: 'a VM (QEMU) or a system container (LXC)' });

export const Instance = Closed({
  name: Type.String(),
  host: Type.Optional(Type.String({ description: 'in a cluster: the host that runs it (requests about it are forwarded there)' })),
  type: InstanceType,
  state: InstanceState,
  reason: Type.Optional(Type.String()),
  uuid: Type.String(),
  smbiosUuid: Type.String(),
  cpus: Type.Integer(),
  memoryMiB: Type.Integer(),
  accel: Type.String(),
  disks: Type.Array(Closed({ id: Type.String(), path: Type.String(), format: Type.String() })),
  nics: Type.Array(
    Closed({
      index: Type.Integer(),
      mac: Type.String(),
      network: Type.String(),
      address: Type.Optional(Type.String()),
      staticAddress: Type.Optional(Type.Boolean()),
      lease: Type.Optional(Type.String()),
      guestAddresses: Type.Optional(Type.Array(Type.String())),
    }),
  ),
  portForwards: Type.Optional(Type.Array(Closed({ protocol: StringEnum(['tcp', 'udp']), hostAddress: Type.String(), hostPort: Type.Integer(), guestPort: Type.Integer() }))),
  tuning: Type.Optional(Tuning),
  container: Type.Optional(
    Closed({
      privileged: Type.Boolean({ description: 'root in the container is root on the host (false: an unprivileged uid range)' }),
      maxProcesses: Type.Integer(),
      diskSizeBytes: Type.Optional(Type.Integer({ description: 'the most its own files may take (`--disk-size`); absent: no limit' })),
    }),
  ),
  boot: Type.Optional(Closed({ kernel: Type.String(), initrd: Type.Optional(Type.String()), cmdline: Type.Optional(Type.String()) })),
  image: Type.Optional(Closed({ name: Type.String(), sha256: Type.String() })),
  instanceId: Type.Optional(Type.String()),
  ssh: Type.Optional(Closed({ user: Type.String(), address: Type.Optional(Type.String()), hostKeyFingerprints: Type.Array(Type.String()) })),
  readiness: Type.Optional(Closed({ phase: Type.String(), detail: Type.String(), at: Type.String() })),
  autostart: Type.Optional(Type.Boolean()),
  restartPolicy: Type.Optional(RestartPolicy),
  pid: Type.Optional(Type.Integer()),
  runtime: Type.Optional(
    Closed({
      accel: StringEnum(['kvm', 'tcg']),
      qemuVersion: Type.String({ description: 'the QEMU release it was started with' }),
      memoryPadKiB: Type.Optional(
        Type.Integer({ description: 'KiB each guest RAM block has beyond memoryMiB (under TCG with QEMU before 9.0, so a live move keeps what the guest writes); absent: none' }),
      ),
      warm: Type.Optional(
        Closed(
          {
            machine: Type.String({ description: 'the machine type the warm state was saved with' }),
            vmgenid: Type.String({ description: "the VM generation ID given at the load (kept by a live move)" }),
            ramBackend: Type.Optional(Type.Boolean({ description: "the guest's RAM is the backend ram-node0 (the warm state's RAM file)" })),
          },
          { description: 'started warm (a saved guest loaded): the device model a live move keeps; absent: a cold start' },
        ),
      ),
    }),
  ),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

/** POST /instances: the fields of `virtnode create` (paths are paths on the daemon's host). */
export const CreateInstanceBody = Closed({
  name: Name,
  type: Type.Optional(InstanceType),
  cpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
  memory: Type.Optional(Type.String({ maxLength: 32, description: 'e.g. 512M, 2G; a bare number is MiB' })),
  disk: Type.Optional(Type.String({ maxLength: 4096, description: 'an existing qcow2 or raw image on the host' })),
  diskSize: Type.Optional(Type.String({ maxLength: 32, description: 'a new empty qcow2 disk of this size' })),
  kernel: Type.Optional(Type.String({ maxLength: 4096 })),
  initrd: Type.Optional(Type.String({ maxLength: 4096 })),
  cmdline: Type.Optional(Type.String({ maxLength: 4096 })),
  accel: Type.Optional(StringEnum(['auto', 'kvm', 'tcg'])),
  network: Type.Optional(
    Type.Array(Type.String({ pattern: NAME_PATTERN, maxLength: 63 }), { minItems: 1, maxItems: 8, description: 'one NIC each: user, none, or a managed network' }),
  ),
  ip: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 8, description: 'static address on the i-th managed network (auto = DHCP)' })),
  start: Type.Optional(Type.Boolean({ description: 'start it right away' })),
  autostart: Type.Optional(Type.Boolean()),
  restartPolicy: Type.Optional(RestartPolicy),
  tuning: Type.Optional(Tuning),
});
export type InstanceView = Static<typeof Instance>;

/** POST /instances/launch: the fields of `virtnode launch`, with file contents instead of file names. */
export const LaunchBody = Closed({
  image: Name,
  imageSha256: Type.Optional(
    Type.String({
      pattern: '^[0-9a-f]{64}$',
      description: "the image's sha256: the host that runs the instance refuses an image of that name with other content, and in a cluster fetches it from a host that holds it when it has none (default: the launching host fills it in)",
    }),
  ),
  type: Type.Optional(InstanceType),
  privileged: Type.Optional(Type.Boolean({ description: 'containers: root in the container is root on the host (default: an unprivileged uid range)' })),
  name: Type.Optional(Name),
  cpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
  memory: Type.Optional(Type.String({ maxLength: 32 })),
  diskSize: Type.Optional(Type.String({ maxLength: 32, description: "VMs: the disk grown to this size; containers: the most the container may write (an ext4 image of this size, at least 128M), e.g. 2G" })),
  pool: Type.Optional(Type.String({ maxLength: 63, description: 'VMs: the pool that holds the disk (default: the instance directory); an nfs or shared-dir pool lets another host open it' })),
  sshAuthorizedKeys: Type.Optional(Type.Array(Type.String({ maxLength: 16_384 }), { maxItems: 64 })),
  userData: Type.Optional(Type.String({ maxLength: 1024 * 1024, description: 'cloud-init user-data (#cloud-config or a script)' })),
  networkConfig: Type.Optional(Type.String({ maxLength: 1024 * 1024 })),
  timezone: Type.Optional(Type.String({ maxLength: 64 })),
  passwordHash: Type.Optional(Type.String({ maxLength: 512 })),
  user: Type.Optional(Type.String({ maxLength: 32 })),
  accel: Type.Optional(StringEnum(['auto', 'kvm', 'tcg'])),
  seed: Type.Optional(StringEnum(['iso', 'vfat', 'http', 'configdrive'])),
  networks: Type.Optional(Type.Array(Type.String({ pattern: NAME_PATTERN, maxLength: 63 }), { maxItems: 8, description: 'managed networks for NICs after NIC 0 (user-mode, for SSH)' })),
  ips: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 8, description: 'static address on the i-th network (auto = DHCP)' })),
  tuning: Type.Optional(Tuning),
  warm: Type.Optional(
    Type.Boolean({ description: "load the template's warm state (true), boot cold (false); default: warm when the template has one and the request fits it" }),
  ),
  wait: Type.Optional(Type.Boolean({ description: 'follow readiness up to SSH and cloud-init (default true)' })),
  timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  target: Type.Optional(Type.String({ maxLength: 63, description: 'in a cluster: the host to run it on (default: the scheduler chooses)' })),
  group: Type.Optional(Type.String({ pattern: NAME_PATTERN, maxLength: 63, description: 'in a cluster: an anti-affinity group; its members go to different hosts while possible' })),
});

export const StopBody = Closed({
  force: Type.Optional(Type.Boolean({ description: 'power off at once, like pulling the plug' })),
  timeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400, description: 'how long the guest gets to power off (default 60)' })),
});

export const DeleteQuery = Closed({ force: Type.Optional(Type.Boolean()) });

export const PolicyBody = Type.Object(
  { autostart: Type.Optional(Type.Boolean()), restartPolicy: Type.Optional(RestartPolicy) },
  { additionalProperties: false, minProperties: 1 },
);

/** POST /instances/{name}/resources: vCPUs and memory of an existing instance (`virtnode set NAME cpus=2 memory=1G`). */
export const ResourcesBody = Type.Object(
  {
    cpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
    memory: Type.Optional(Type.String({ maxLength: 32, description: 'e.g. 512M, 2G; a bare number is MiB' })),
    disk: Type.Optional(Type.String({ maxLength: 32, description: 'containers launched with a disk size, stopped: grow it to this, e.g. 4G' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export const ResourcesResult = Closed({
  instance: Instance,
  /** When each change takes effect: now (memory through the balloon, still the new size after a restart) or at the next boot. */
  effect: Closed({ cpus: Type.Optional(StringEnum(['next-boot'])), memory: Type.Optional(StringEnum(['live', 'next-boot'])), disk: Type.Optional(StringEnum(['now'])) }),
});

export const Image = Closed({
  name: Type.String(),
  format: Type.String(),
  sha256: Type.String(),
  virtualSize: Type.Integer(),
  fileSize: Type.Integer(),
  path: Type.String(),
  source: Type.String(),
  sourceSha256: Type.String(),
  verifiedBy: Type.Unsafe<string | null>({ type: 'string', nullable: true }),
  createdAt: Type.String(),
  hosts: Type.Optional(Type.Array(Type.String(), { description: 'in a cluster (image ls): the online hosts that hold this content (its sha256), this one included' })),
});
export type ImageView = Static<typeof Image>;

export const ImportBody = Closed({ file: Type.String({ minLength: 1, maxLength: 4096, description: 'a qcow2 or raw image (or .xz/.gz of one) on the daemon host' }), name: Type.Optional(Name) });
export const PullBody = Closed({
  url: Type.String({ minLength: 1, maxLength: 8192, pattern: '^https?://' }),
  name: Type.Optional(Name),
  sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$' })),
  checksumsUrl: Type.Optional(Type.String({ maxLength: 8192, pattern: '^https?://' })),
});
/** POST /images/build: the arguments of `virtnode image build`. */
export const BuildImageBody = Closed({
  recipe: Type.String({ minLength: 1, maxLength: 63, description: 'a recipe virtnode knows: debian-12' }),
  name: Type.Optional(Name),
  size: Type.Optional(Type.String({ minLength: 1, maxLength: 32, description: 'virtual disk size, e.g. 4G (default)' })),
  packages: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9+.-]+$', maxLength: 100 }), { maxItems: 200, description: 'extra Debian packages' })),
});

/** An instance's NIC with its addresses (`virtnode nic ls`). */
// The NIC and port strings below have loose lengths on purpose: the core parses them and names the field the way
// the CLI does, so a bad value gets the same message through the daemon as without it.
export const InstanceNic = Closed({
  index: Type.Integer(),
  mac: Type.String(),
  network: Type.String(),
  reserved: Type.Optional(Type.String()),
  staticAddress: Type.Optional(Type.Boolean()),
  lease: Type.Optional(Type.String()),
  guest: Type.Optional(Type.Array(Type.String())),
});
export const AttachNicBody = Closed({
  network: Type.String({ maxLength: 256, description: 'a managed network, or user' }),
  ip: Type.Optional(Type.String({ maxLength: 256, description: 'static address on a nat/isolated network' })),
});
/** A NIC as listed (attach and detach answer without `lease` and `guest`). */
export type NicView = Static<typeof InstanceNic>;
export const NicParams = Closed({ name: Name, nic: Type.String({ maxLength: 256, description: 'MAC address or NIC index' }) });

export const PortForward = Closed({ protocol: StringEnum(['tcp', 'udp']), hostAddress: Type.String(), hostPort: Type.Integer(), guestPort: Type.Integer(), owner: Type.Optional(StringEnum(['user', 'ssh'])) });
/** A user-mode port forward; `owner: ssh` is the SSH forward virtnode made for the instance. */
export type PortForwardView = Static<typeof PortForward>;
export const AddPortBody = Closed({
  ports: Type.String({ maxLength: 256, description: 'HOST:GUEST[/tcp|udp], e.g. 8080:80' }),
  address: Type.Optional(Type.String({ maxLength: 256, description: 'host address to bind (default 127.0.0.1)' })),
});
export const PortParams = Closed({ name: Name, port: Type.String({ maxLength: 256, description: 'HOST[/tcp|udp], e.g. 8080 or 5353/udp' }) });

export const DiskChange = Closed({ instance: Type.String(), volume: Type.String(), diskId: Type.String(), live: Type.Boolean() });
export const AttachDiskBody = Closed({ volume: CheckedName });
export const DiskParams = Closed({ name: CheckedName, volume: CheckedName });

export const RemoveImageQuery = Closed({ force: Type.Optional(Type.Boolean()) });

export const OperationError = Closed({ code: Type.String(), message: Type.String(), hint: Type.Optional(Type.String()) });

export const Operation = Closed({
  id: Type.String(),
  kind: Type.String({ description: 'launch, stop, restart, image-pull, image-import, ...' }),
  target: Type.Optional(Type.String({ description: 'the resource it works on, e.g. instances/web' })),
  status: StringEnum(['running', 'succeeded', 'failed', 'cancelled']),
  progress: Closed({
    phase: Type.Optional(Type.String()),
    detail: Type.Optional(Type.String()),
    percent: Type.Optional(Type.Number()),
    bytes: Type.Optional(Type.Number()),
    totalBytes: Type.Optional(Type.Number()),
    expectedRemainingSeconds: Type.Optional(Type.Number({ description: "the work's own estimate of the time left (a live move's, from QEMU's figures), when it has one" })),
    entries: Type.Array(Closed({ phase: Type.String(), detail: Type.String(), elapsedMs: Type.Number() })),
  }),
  result: Type.Optional(Type.Unknown()),
  error: Type.Optional(OperationError),
  createdAt: Type.String(),
  finishedAt: Type.Optional(Type.String()),
  startedBy: Type.Optional(Type.String({ description: "who asked for it: socket (the host's UNIX socket) or token:NAME" })),
});
export type OperationView = Static<typeof Operation>;
export type OperationStatus = OperationView['status'];

export const WaitQuery = Closed({
  timeout: Type.Optional(Type.Number({ minimum: 0, maximum: 3600, description: 'seconds to wait at most' })),
  progressAfter: Type.Optional(Type.Integer({ minimum: 0, description: 'also return when there are more progress entries than this' })),
});
export const GetOperationQuery = Closed({ wait: Type.Optional(Type.Number({ minimum: 0, maximum: 3600, description: 'wait up to this many seconds for it to finish' })) });
export const ListOperationsQuery = Closed({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'at most this many, newest first (default 100)' })),
  status: Type.Optional(StringEnum(['running', 'succeeded', 'failed', 'cancelled'])),
});
export const OperationParams = Closed({ id: Type.String({ pattern: '^[0-9a-f-]{36}$' }) });

export const HostCheck = Closed({ id: Type.String(), title: Type.String(), status: StringEnum(['PASS', 'WARN', 'FAIL']), detail: Type.String(), hint: Type.Optional(Type.String()) });
export const HostSummary = Closed({
  hostname: Type.String(),
  kernel: Type.String(),
  cpus: Type.Integer(),
  memoryBytes: Type.Integer(),
  memoryAvailableBytes: Type.Integer(),
  loadAverage: Type.Array(Type.Number()),
  uptimeSeconds: Type.Number(),
  stateDir: Type.String(),
  version: Type.String(),
  instances: Type.Record(Type.String(), Type.Integer()),
  disk: Type.Optional(
    Closed(
      { capacityBytes: Type.Integer(), availableBytes: Type.Integer() },
      { description: 'the filesystem holding the state directory (instances, images); absent if it cannot be read' },
    ),
  ),
});
export const HostReport = Closed({
  status: StringEnum(['PASS', 'WARN', 'FAIL']),
  checks: Type.Array(HostCheck),
  cpu: Type.Object({}, { additionalProperties: true }),
  accelerator: Closed({ chosen: StringEnum(['kvm', 'tcg']), reason: Type.String() }),
  kvm: Type.Object({}, { additionalProperties: true }),
  qemu: Type.Object({}, { additionalProperties: true }),
  kernel: Closed({ release: Type.String() }),
  firmware: Type.Object({}, { additionalProperties: true }),
  durationMs: Type.Number(),
});
export const HostCheckQuery = Closed({
  refresh: Type.Optional(Type.Boolean()),
  cpuinfo: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'judge the CPU from this captured /proc/cpuinfo (a file on the daemon host)' })),
});

export const Network = Closed({
  name: Type.String(),
  mode: Type.String(),
  bridge: Type.String(),
  subnet: Type.Optional(Type.String()),
  gateway: Type.Optional(Type.String()),
  dhcpRange: Type.Optional(Type.String()),
  domain: Type.Optional(Type.String()),
  id: Type.String(),
  up: Type.Optional(Type.Boolean()),
  bridgeExists: Type.Optional(Type.Boolean({ description: 'the Linux bridge exists on the host' })),
  dnsmasqPid: Type.Optional(Type.Integer()),
  nftTable: Type.Optional(Type.String()),
  nftTableExists: Type.Optional(Type.Boolean({ description: "virtnode's nftables table of the network exists (nat, isolated)" })),
  cluster: Type.Optional(Type.Boolean({ description: 'defined cluster-wide: every host of the cluster has it' })),
  dhcpHost: Type.Optional(Type.String({ description: 'cluster nat/isolated: the host that runs its DHCP/DNS and gateway (the host that created it, or the host that took the role over while it was offline)' })),
  vni: Type.Optional(Type.Integer({ description: 'cluster nat/isolated: the VXLAN network identifier joining the hosts\' bridges' })),
  vxlanExists: Type.Optional(Type.Boolean({ description: "cluster nat/isolated: this host's VXLAN device of the network exists" })),
  instances: Type.Optional(Type.Array(Type.String(), { description: 'instances with a NIC on the network' })),
  warnings: Type.Optional(Type.Array(Type.String())),
  createdAt: Type.String(),
});

export type NetworkView = Static<typeof Network>;

/** POST /networks: the fields of `virtnode network create`. */
export const CreateNetworkBody = Closed({
  name: Name,
  mode: Type.Optional(StringEnum(['nat', 'isolated', 'bridge'])),
  // Loose lengths: the core checks each value and names the field the way the CLI does (the body limit caps them).
  subnet: Type.Optional(Type.String({ maxLength: 1024, description: 'IPv4 CIDR, e.g. 10.77.0.0/24; left out: the first /24 of 10.77.0.0/16, then 172.31.0.0/16, that no network or host route uses' })),
  dhcpRange: Type.Optional(Type.String({ maxLength: 1024, description: 'FIRST-LAST inside the subnet' })),
  domain: Type.Optional(Type.String({ maxLength: 1024, description: 'DNS domain (at most 253 characters)' })),
  bridge: Type.Optional(Type.String({ maxLength: 1024, description: 'bridge mode: the existing bridge NICs join (at most 15 characters)' })),
  vni: Type.Optional(Type.Integer({ description: 'in a cluster, nat/isolated: the VXLAN network identifier (1-16777215; default: a free one)' })),
});

/** A DHCP lease of a nat/isolated network (`virtnode network leases`), with the instance whose NIC has the MAC. */
export const NetworkLease = Closed({
  mac: Type.String(),
  address: Type.String(),
  hostname: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String()),
  expires: Type.Optional(Type.String({ description: 'ISO 8601; absent for a lease that never expires' })),
});
export type NetworkLeaseView = Static<typeof NetworkLease>;

/** A snapshot of an instance; `parent` is the snapshot it was taken from (the list is flat, oldest first). */
export const Snapshot = Closed({
  name: Type.String(),
  kind: StringEnum(['internal', 'external']),
  memory: Type.Boolean({ description: 'holds the guest\'s memory state (taken while it ran)' }),
  current: Type.Boolean({ description: 'the instance\'s present state descends from it' }),
  state: StringEnum(['creating', 'ready', 'deleting', 'reverting']),
  parent: Type.Unsafe<string | null>({ type: 'string', nullable: true }),
  disks: Type.Array(Closed({ id: Type.String(), file: Type.String(), format: Type.String() })),
  createdAt: Type.String(),
});
export type SnapshotApiView = Static<typeof Snapshot>;

/** POST /instances/{name}/snapshots: the options of `virtnode snapshot create`. */
export const CreateSnapshotBody = Closed({
  name: Type.Optional(CheckedName),
  diskOnly: Type.Optional(Type.Boolean({ description: 'running instance: an external snapshot of the disks, no memory state' })),
  external: Type.Optional(Type.Boolean({ description: 'stopped instance: an external snapshot (overlays) instead of an internal one' })),
  quiesce: Type.Optional(Type.Boolean({ description: 'freeze the guest\'s filesystems through its agent during a diskOnly snapshot' })),
});

export const PoolType = Type.Union([Type.Literal('dir'), Type.Literal('shared-dir'), Type.Literal('nfs')], {
  description: 'dir: a local directory; shared-dir: a directory mounted at the same path on every host; nfs: an export QEMU reaches itself (nfs://)',
});

export const Pool = Closed({
  name: Type.String(),
  type: PoolType,
  path: Type.String({ description: 'the directory, or for nfs the nfs:// URL of the export' }),
  source: Type.Optional(Type.String({ description: 'nfs: SERVER:/EXPORT' })),
  shared: Type.Boolean({ description: 'other hosts can open its disks (shared-dir, nfs)' }),
  volumes: Type.Integer(),
  volumeAllocation: Type.Integer({ description: 'bytes the pool\'s volumes take on the host' }),
  capacity: Type.Integer({ description: 'of the filesystem holding the pool' }),
  allocation: Type.Integer({ description: 'used on that filesystem (by anything)' }),
  available: Type.Integer(),
  volumeNames: Type.Optional(Type.Array(Type.String())),
  otherFiles: Type.Optional(Type.Integer({ description: 'files in the directory that are no volume' })),
  problem: Type.Optional(Type.String({ description: 'why the sizes are unknown (server unreachable, directory missing)' })),
  createdAt: Type.String(),
});
export type PoolApiView = Static<typeof Pool>;

const InternalSnapshotInfo = Closed({ id: Type.String(), name: Type.String(), vmStateSize: Type.Integer({ description: 'bytes of memory state (0: disks only)' }), date: Type.String() });

const ChainLink = Closed({
  path: Type.String(),
  format: Type.String(),
  virtualSize: Type.Integer(),
  allocation: Type.Integer(),
  backing: Type.Optional(Type.String()),
  snapshots: Type.Optional(Type.Array(InternalSnapshotInfo, { description: 'internal (qcow2) snapshots inside this file' })),
});

export const Volume = Closed({
  name: Type.String(),
  pool: Type.String(),
  path: Type.String(),
  format: StringEnum(['qcow2', 'raw']),
  state: StringEnum(['creating', 'ready', 'deleting']),
  virtualSize: Type.Optional(Type.Integer()),
  allocation: Type.Optional(Type.Integer()),
  attachedTo: Type.Optional(Type.String({ description: 'the instance using it as a disk' })),
  overlay: Type.Optional(Type.String({ description: 'the snapshot overlay its instance writes through' })),
  problem: Type.Optional(Type.String()),
  chain: Type.Optional(Type.Array(ChainLink, { description: 'the file and its backing files, top first' })),
  activeChain: Type.Optional(Type.Array(ChainLink, { description: 'the chain its instance writes through (from the snapshot overlay down)' })),
  createdAt: Type.String(),
});
export type VolumeApiView = Static<typeof Volume>;

export const VolumesQuery = Closed({ pool: Type.Optional(CheckedName) });
export const CheckedNameParams = Closed({ name: CheckedName });

/** POST /pools: `virtnode pool create NAME --path DIR`. */
export const CreatePoolBody = Closed({
  name: Name,
  type: Type.Optional(Type.String({ description: 'dir (default), shared-dir or nfs' })),
  path: Type.Optional(Type.String({ description: 'dir, shared-dir: absolute path of an existing directory on the daemon\'s host' })),
  source: Type.Optional(Type.String({ description: 'nfs: SERVER:/EXPORT' })),
});

/** An instance's own disk (made by create/launch in its directory; not a volume). */
export const InstanceDisk = Closed({
  instance: Type.String(),
  id: Type.String(),
  path: Type.String(),
  format: Type.String(),
  virtualSize: Type.Optional(Type.Integer()),
  allocation: Type.Optional(Type.Integer()),
});
export type InstanceDiskApiView = Static<typeof InstanceDisk>;

export const ResizeVolumeBody = Closed({
  size: Type.String({ description: 'new virtual size: 512M, 10G, 1T' }),
  allowShrink: Type.Optional(Type.Boolean({ description: 'allow a smaller size (data past the end is lost)' })),
});
export const VolumeResize = Closed({ volume: Type.String(), from: Type.Integer(), to: Type.Integer(), live: Type.Boolean({ description: 'resized in the running instance (block_resize)' }) });
export const ConvertVolumeBody = Closed({ format: Type.String({ description: 'qcow2 or raw' }) });
export const VolumeCheck = Closed({
  clean: Type.Boolean(),
  supported: Type.Boolean({ description: 'false for raw images (no metadata to check)' }),
  exitCode: Type.Integer({ description: 'qemu-img check: 0 clean, 1 check failed, 2 corruptions, 3 leaked clusters only' }),
  corruptions: Type.Integer(),
  leaks: Type.Integer(),
  checkErrors: Type.Integer(),
});
export type VolumeCheckView = Static<typeof VolumeCheck>;
export const ImportVolumeBody = Closed({
  file: Type.String({ description: 'absolute path of an image file on the daemon\'s host' }),
  name: Type.Optional(Type.String({ description: 'volume name (default: from the file name)' })),
  pool: Type.Optional(Type.String()),
  format: Type.Optional(Type.String({ description: 'qcow2 or raw (default: raw stays raw, anything else becomes qcow2)' })),
});
export const ExportVolumeBody = Closed({
  file: Type.String({ description: 'absolute path of a new file on the daemon\'s host (never overwritten)' }),
  format: Type.Optional(Type.String({ description: 'qcow2 or raw (default: the volume\'s)' })),
});
export const VolumeExport = Closed({ path: Type.String(), format: StringEnum(['qcow2', 'raw']) });

/** POST /volumes: the fields of `virtnode volume create`. */
export const CreateVolumeBody = Closed({
  name: Name,
  size: Type.String({ description: 'virtual size: 512M, 10G, 1T (checked by virtnode, which names the field as the CLI does)' }),
  format: Type.Optional(Type.String({ description: 'qcow2 (default) or raw' })),
  preallocate: Type.Optional(Type.Boolean({ description: 'reserve the space on the host now' })),
  pool: Type.Optional(CheckedName),
});

export const Template = Closed({
  name: Type.String(),
  source: Type.String({ description: 'the instance it was made of' }),
  disk: Type.String(),
  format: Type.String(),
  virtualSize: Type.Integer(),
  sha256: Type.String(),
  image: Type.Optional(Closed({ name: Type.String(), sha256: Type.String() })),
  defaults: Closed({
    cpus: Type.Integer(),
    memoryMiB: Type.Integer(),
    accel: Type.String(),
    boot: Type.Optional(Closed({ kernel: Type.String(), initrd: Type.Optional(Type.String()), cmdline: Type.Optional(Type.String()) })),
    user: Type.Optional(Type.String()),
    networks: Type.Array(Type.String()),
  }),
  sealMethod: StringEnum(['guest-agent', 'offline']),
  sealReport: Type.Array(Type.String()),
  warm: Type.Optional(
    Closed(
      {
        state: Type.String({ description: 'the saved memory of the guest' }),
        stateBytes: Type.Integer(),
        disk: Type.String({ description: 'the disk as it was then (an overlay on the template disk)' }),
        qemuVersion: Type.String(),
        machine: Type.String(),
        accel: Type.String(),
        bootMs: Type.Integer({ description: 'how long the boot to the saved point took' }),
        memoryPadKiB: Type.Optional(
          Type.Integer({ description: 'KiB each guest RAM block had beyond the memory when the state was saved (TCG, QEMU before 9.0); every warm launch uses the same; absent: none' }),
        ),
      },
      { description: 'present when launches can load a memory state instead of booting (`template create --warm`)' },
    ),
  ),
  clones: Type.Array(Type.String({ description: 'instances whose disks sit on it' })),
  createdAt: Type.String(),
});
export type TemplateView = Static<typeof Template>;

/** POST /templates: `virtnode template create INSTANCE [NAME]`. */
export const CreateTemplateBody = Closed({
  instance: Name,
  name: Type.Optional(Name),
  warm: Type.Optional(Type.Boolean({ description: 'also save the template booted to just before its first boot, for warm launches' })),
});

/** POST /instances/{name}/clone: `virtnode clone NAME NEW [--linked]`. */
export const CloneBody = Closed({
  name: Name,
  linked: Type.Optional(Type.Boolean({ description: 'a qcow2 overlay on the source disk (constant time) instead of a full copy' })),
});

/** Every route declares its error responses with this one shape. */
export function withErrors<T extends Record<number | string, TSchema>>(ok: T): T & { '4xx': typeof ErrorBody; '5xx': typeof ErrorBody } {
  return { ...ok, '4xx': ErrorBody, '5xx': ErrorBody };
}

/** A single-use ticket for one WebSocket (a browser cannot send the bearer token on one): open `url` within 30 s. */
export const WebSocketTicket = Closed({ ticket: Type.String(), expiresAt: Type.String({ format: 'date-time' }), url: Type.String({ description: 'the WebSocket path with the ticket' }) });
export type TicketView = Static<typeof WebSocketTicket>;
export const TicketQuery = Closed({ ticket: Type.Optional(Type.String({ maxLength: 64 })) });
/** POST /ui-logins (the host's administrator, e.g. `virtnode ui`): a one-time login link for the web UI. */
export const UiLogin = Closed({
  url: Type.String({ description: 'opens the web UI logged in; the code in it works once, within its validity' }),
  expiresAt: Type.String({ format: 'date-time' }),
  tlsFingerprint256: Type.Optional(Type.String({ description: "SHA-256 of the daemon's own certificate, to check before trusting it" })),
});
export type UiLoginView = Static<typeof UiLogin>;
export const UiLoginRedeemBody = Closed({ code: Type.String({ minLength: 1, maxLength: 64 }) });
/** What the browser gets for a login code: a token of its own, for this tab, that ends by itself. */
export const UiSession = Closed({ token: Type.String(), name: Type.String(), expiresAt: Type.String({ format: 'date-time' }) });
