/**
 * The core's records as the API's views (the shapes of src/api/schemas.ts): what `--format json|yaml` prints and
 * what the REST API returns. Mapping the core to the wire is the application layer's job.
 */
import type { Instance, Nic, PortForwardSpec } from '../instances/model.ts';
import type { Lease } from '../network/dnsmasq-config.ts';
import type { ImageRecord } from '../images/store/index.ts';
import type { NicAddresses } from '../instances/addresses.ts';
import { dhcpHostOf, type Network } from '../network/model.ts';
import type { NetworkStatus } from '../network/service.ts';
import type { InstancePolicy } from '../store/policies.ts';
import type { Snapshot } from '../store/storage.ts';
import type { PoolUsage } from '../storage/pools.ts';
import type { ChainLink, CheckResult } from '../storage/qemu-img.ts';
import type { InstanceDiskView, VolumeView } from '../storage/volumes.ts';
import type { Template } from '../templates/model.ts';
import type { SealResult } from '../templates/seal.ts';
import type { SealView } from '../api/contracts/templates.ts';
import type { ImageView, InstanceDiskApiView, InstanceView, NetworkLeaseView, NetworkView, NicView, PoolApiView, PortForwardView, SnapshotApiView, TemplateView, VolumeApiView, VolumeCheckView } from '../api/schemas.ts';

/**
 * `policy`: autostart and restart policy (shown when given); `addresses`: what is known of each NIC's addresses
 * (reservation, DHCP lease, guest agent), from src/instances/addresses.ts.
 */
export function instanceView(i: Instance, policy?: InstancePolicy, addresses?: NicAddresses[]): InstanceView {
  return {
    name: i.name,
    type: i.type,
    state: i.state,
    ...(i.stateReason === undefined ? {} : { reason: i.stateReason }),
    uuid: i.uuid,
    smbiosUuid: i.smbiosUuid,
    cpus: i.spec.cpus,
    memoryMiB: i.spec.memoryMiB,
    accel: i.spec.accel,
    disks: i.spec.disks.map((d) => ({ id: d.id, path: d.path, format: d.format })),
    nics: i.nics.map((n) => {
      const a = addresses?.find((x) => x.index === n.index);
      return {
        index: n.index,
        mac: n.mac,
        network: n.network,
        ...(n.address === undefined ? {} : { address: n.address, staticAddress: n.staticAddress ?? false }),
        ...(a?.lease === undefined ? {} : { lease: a.lease }),
        ...(a?.guest === undefined ? {} : { guestAddresses: a.guest }),
      };
    }),
    ...((i.spec.portForwards ?? []).length === 0 ? {} : { portForwards: i.spec.portForwards! }),
    ...(i.spec.tuning === undefined || Object.keys(i.spec.tuning).length === 0 ? {} : { tuning: i.spec.tuning }),
    ...(i.spec.container === undefined
      ? {}
      : {
          container: {
            privileged: i.spec.container.idmapBase === undefined,
            maxProcesses: i.spec.container.maxProcesses,
            ...(i.spec.container.diskSizeBytes === undefined ? {} : { diskSizeBytes: i.spec.container.diskSizeBytes }),
          },
        }),
    ...(i.spec.boot === undefined ? {} : { boot: i.spec.boot }),
    ...(i.spec.image === undefined ? {} : { image: { name: i.spec.image.name, sha256: i.spec.image.sha256 } }),
    ...(i.spec.instanceId === undefined ? {} : { instanceId: i.spec.instanceId }),
    ...(i.spec.ssh === undefined
      ? {}
      : {
          ssh: {
            user: i.spec.ssh.user,
            ...(i.spec.ssh.address !== undefined
              ? { address: `${i.spec.ssh.address}:${i.spec.ssh.guestPort}` }
              : i.spec.ssh.hostPort === undefined
                ? {}
                : { address: `127.0.0.1:${i.spec.ssh.hostPort}` }),
            hostKeyFingerprints: i.spec.ssh.hostKeyFingerprints,
          },
        }),
    ...(i.spec.readiness === undefined ? {} : { readiness: i.spec.readiness }),
    ...(policy === undefined ? {} : { autostart: policy.autostart, restartPolicy: policy.restart }),
    ...(i.pid === undefined ? {} : { pid: i.pid }),
    // While it runs: how its QEMU runs (the record keeps the last start's after a stop).
    ...(i.pid === undefined || i.spec.runtime === undefined ? {} : { runtime: i.spec.runtime }),
    createdAt: i.createdAt,
    updatedAt: i.updatedAt,
  };
}

export function imageView(i: ImageRecord): ImageView {
  return {
    name: i.name,
    format: i.format,
    sha256: i.sha256,
    virtualSize: i.virtualSize,
    fileSize: i.fileSize,
    path: i.path,
    source: i.source,
    sourceSha256: i.sourceSha256,
    verifiedBy: i.verifiedBy ?? null,
    createdAt: i.createdAt,
  };
}

/**
 * The stable view of a network (JSON/YAML output and the API); `status` adds what runs on the host, `instances`
 * (for lists, without the host side) the instances with a NIC on it.
 */
export function networkView(n: Network, status?: NetworkStatus, instances?: string[]): NetworkView {
  const names = status?.instances ?? instances;
  return {
    name: n.name,
    mode: n.mode,
    bridge: n.bridge,
    ...(n.ipv4 === undefined ? {} : { subnet: n.ipv4.subnet, gateway: n.ipv4.gateway, dhcpRange: `${n.ipv4.dhcpStart}-${n.ipv4.dhcpEnd}` }),
    ...(n.domain === undefined ? {} : { domain: n.domain }),
    id: n.id,
    ...(status === undefined
      ? {}
      : {
          up: status.bridge && status.vxlan !== false && (n.mode === 'bridge' || !status.servesDhcp || (status.dnsmasqPid !== undefined && status.nftTable)),
          bridgeExists: status.bridge,
          ...(status.dnsmasqPid === undefined ? {} : { dnsmasqPid: status.dnsmasqPid }),
          ...(n.mode === 'bridge' ? {} : { nftTable: `ip virtnode_${n.id}`, nftTableExists: status.nftTable }),
          ...(status.vxlan === undefined ? {} : { vxlanExists: status.vxlan }),
        }),
    ...(n.cluster === undefined ? {} : { cluster: true, ...(n.cluster.vni === undefined ? {} : { vni: n.cluster.vni, dhcpHost: dhcpHostOf(n)! }) }),
    ...(names === undefined ? {} : { instances: names }),
    ...(status === undefined ? {} : { warnings: status.warnings }),
    createdAt: n.createdAt,
  };
}

/** One DHCP lease of a managed network, with the instance whose NIC has that MAC. */
export function networkLeaseView(lease: Lease, instance: string | undefined): NetworkLeaseView {
  return {
    mac: lease.mac,
    address: lease.address,
    ...(lease.hostname === undefined ? {} : { hostname: lease.hostname }),
    ...(instance === undefined ? {} : { instance }),
    ...(lease.expires === undefined ? {} : { expires: lease.expires.toISOString() }),
  };
}

/** A NIC as attach and detach report it (GET .../nics adds the lease and the guest's addresses). */
export function attachedNicView(n: Nic): NicView {
  return { index: n.index, mac: n.mac, network: n.network, ...(n.address === undefined ? {} : { reserved: n.address }), ...(n.staticAddress ? { staticAddress: true } : {}) };
}

export function portForwardView(f: PortForwardSpec, owner?: 'user' | 'ssh'): PortForwardView {
  return { protocol: f.protocol, hostAddress: f.hostAddress, hostPort: f.hostPort, guestPort: f.guestPort, ...(owner === undefined ? {} : { owner }) };
}

/** An instance's port forwards (`virtnode port ls`): virtnode's SSH forward first, then the user's. */
export function portForwardViews(i: Instance): PortForwardView[] {
  const rows = (i.spec.portForwards ?? []).map((f) => portForwardView(f, 'user'));
  const ssh = i.spec.ssh;
  if (ssh?.hostPort !== undefined) rows.unshift(portForwardView({ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: ssh.hostPort, guestPort: ssh.guestPort }, 'ssh'));
  return rows;
}

/** A snapshot of an instance (GET /instances/{name}/snapshots lists them flat, each naming its parent). */
export function snapshotView(s: Snapshot): SnapshotApiView {
  return {
    name: s.name,
    kind: s.kind,
    memory: s.memory,
    current: s.current,
    state: s.state,
    parent: s.parent ?? null,
    disks: s.disks.map((d) => ({ id: d.id, file: d.file, format: d.format })),
    createdAt: s.createdAt,
  };
}

export function poolView(p: PoolUsage & { volumeNames?: string[]; otherFiles?: number }): PoolApiView {
  return {
    name: p.name,
    type: p.type,
    path: p.path,
    ...(p.source === undefined ? {} : { source: p.source }),
    shared: p.type !== 'dir',
    volumes: p.volumes,
    volumeAllocation: p.volumeAllocation,
    capacity: p.capacity,
    allocation: p.allocation,
    available: p.available,
    ...(p.volumeNames === undefined ? {} : { volumeNames: p.volumeNames }),
    ...(p.otherFiles === undefined ? {} : { otherFiles: p.otherFiles }),
    ...(p.problem === undefined ? {} : { problem: p.problem }),
    createdAt: p.createdAt,
  };
}

function chainLinkView(l: ChainLink) {
  return {
    path: l.path,
    format: l.format,
    virtualSize: l.virtualSize,
    allocation: l.allocation,
    ...(l.backing === undefined ? {} : { backing: l.backing }),
    ...(l.snapshots.length === 0 ? {} : { snapshots: l.snapshots.map((s) => ({ id: s.id, name: s.name, vmStateSize: s.vmStateSize, date: s.date })) }),
  };
}

/**
 * A volume; `chain` (GET /volumes/{name}) is its file and backing files, top first (with the internal snapshots
 * inside each file); `activeChain` is the chain its instance writes through when an external snapshot overlay
 * sits on it.
 */
export function volumeView(v: VolumeView & { chain?: ChainLink[]; activeChain?: ChainLink[] | undefined }): VolumeApiView {
  return {
    name: v.name,
    pool: v.pool,
    path: v.path,
    format: v.format,
    state: v.state,
    ...(v.virtualSize === undefined ? {} : { virtualSize: v.virtualSize }),
    ...(v.allocation === undefined ? {} : { allocation: v.allocation }),
    ...(v.attachedTo === undefined ? {} : { attachedTo: v.attachedTo }),
    ...(v.overlay === undefined ? {} : { overlay: v.overlay }),
    ...(v.problem === undefined ? {} : { problem: v.problem }),
    ...(v.chain === undefined ? {} : { chain: v.chain.map(chainLinkView) }),
    ...(v.activeChain === undefined ? {} : { activeChain: v.activeChain.map(chainLinkView) }),
    createdAt: v.createdAt,
  };
}

/** An instance's own disk (made by create/launch in its directory, not a volume): `volume ls --all`. */
export function instanceDiskView(d: InstanceDiskView): InstanceDiskApiView {
  return {
    instance: d.instance,
    id: d.id,
    path: d.path,
    format: d.format,
    ...(d.virtualSize === undefined ? {} : { virtualSize: d.virtualSize }),
    ...(d.allocation === undefined ? {} : { allocation: d.allocation }),
  };
}

/** The result of `qemu-img check` on a volume (raw images have nothing to check: supported false). */
export function volumeCheckView(r: CheckResult): VolumeCheckView {
  return { clean: r.clean, supported: r.supported, exitCode: r.exitCode, corruptions: r.corruptions, leaks: r.leaks, checkErrors: r.checkErrors };
}

/** A template, with the instances whose disks sit on it (the same view as `template ls --format json`). */
export function templateView(t: Template, clones: string[]): TemplateView {
  return {
    name: t.name,
    source: t.source,
    disk: t.diskPath,
    format: t.format,
    virtualSize: t.virtualSize,
    sha256: t.sha256,
    ...(t.image === undefined ? {} : { image: { name: t.image.name, sha256: t.image.sha256 } }),
    defaults: {
      cpus: t.defaults.cpus,
      memoryMiB: t.defaults.memoryMiB,
      accel: t.defaults.accel,
      ...(t.defaults.boot === undefined
        ? {}
        : {
            boot: {
              kernel: t.defaults.boot.kernel,
              ...(t.defaults.boot.initrd === undefined ? {} : { initrd: t.defaults.boot.initrd }),
              ...(t.defaults.boot.cmdline === undefined ? {} : { cmdline: t.defaults.boot.cmdline }),
            },
          }),
      ...(t.defaults.user === undefined ? {} : { user: t.defaults.user }),
      networks: t.defaults.networks,
    },
    sealMethod: t.sealMethod,
    sealReport: t.sealReport,
    ...(t.warm === undefined
      ? {}
      : { warm: { state: t.warm.statePath, stateBytes: t.warm.stateBytes, disk: t.warm.diskPath, qemuVersion: t.warm.model.qemuVersion, machine: t.warm.model.machine, accel: t.warm.model.accel, bootMs: t.warm.bootMs, ...(t.warm.model.memoryPadKiB === undefined ? {} : { memoryPadKiB: t.warm.model.memoryPadKiB }) } }),
    clones,
    createdAt: t.createdAt,
  };
}

/** What sealing did (template create, clone of an instance). */
export function sealView(s: SealResult): SealView {
  return { method: s.method, root: s.root ?? null, changes: s.changes, summary: s.summary };
}
