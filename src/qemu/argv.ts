import { usesDirectIo, type DiskCacheMode } from '../instances/model.ts';
import { protocolProps } from './protocol-node.ts';
import { GUEST_AGENT_CHARDEV, type QemuDisk, type QemuNic, type QemuSpec } from './spec.ts';

/** QEMU's option syntax uses commas as separators; a literal comma inside a value is written twice. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** QEMU splits a guestfwd command with GLib's shell-style parser (no shell runs); single quotes keep words whole. */
function glibShellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

function options(head: string, props: Record<string, string | number | boolean | undefined>): string {
  const parts = [head];
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined) continue;
    const text = typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value);
    parts.push(`${key}=${escapeOptionValue(text)}`);
  }
  return parts.join(',');
}

/**
 * Empty PCIe root ports, one hot-plugged device each (q35 cannot hot-plug onto its root bus). Disks and NICs
 * added live go to the first free port: `device_add ... bus=hotplugPortId(i)`.
 */
export const HOTPLUG_PORTS = 4;

export function hotplugPortId(index: number): string {
  return `hotplug${index}`;
}

/** The `-netdev` value of a NIC (also what `netdev_add` takes for a hot-plugged one, as an object). */
export function netdevOption(nic: QemuNic): string {
  const backend = nic.backend;
  if (backend.kind === 'tap') {
    const queues = backend.queues !== undefined && backend.queues > 1 ? { queues: backend.queues } : {};
    return options('tap', { id: nic.id, ifname: backend.ifname, script: 'no', downscript: 'no', ...queues });
  }
  const forwards = (backend.forwards ?? []).map(
    (f) => `hostfwd=${escapeOptionValue(`${f.protocol}:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`)}`,
  );
  const guestForwards = (backend.guestForwards ?? []).map(
    (g) => `guestfwd=${escapeOptionValue(`tcp:${g.address}:${g.port}-cmd:${g.command.map(glibShellQuote).join(' ')}`)}`,
  );
  return [options('user', { id: nic.id, ...(backend.restrict === true ? { restrict: 'on' } : {}) }), ...forwards, ...guestForwards].join(',');
}

function unixSocketChardev(id: string, path: string, extra: Record<string, string | boolean> = {}): string[] {
  return ['-chardev', options('socket', { id, path, server: true, wait: false, ...extra })];
}

/**
 * Turns a VM spec into QEMU's argument vector. Pure: same spec, same argv (pinned by golden files).
 * QEMU starts paused (-S); the caller finishes over QMP and sends `cont`. `-no-shutdown` keeps the process
 * when the guest powers off, so whoever attaches next can tell a clean power-off from a crash.
 */
export function buildArgv(spec: QemuSpec): string[] {
  const { paths } = spec;
  const argv: string[] = [
    '-name', options(`guest=${escapeOptionValue(spec.name)}`, { 'debug-threads': true }),
    '-uuid', spec.uuid,
    '-smbios', options('type=1', { uuid: spec.smbiosUuid, manufacturer: 'virtnode', product: 'virtnode VM', serial: spec.smbiosSerial }),
    '-machine', options(spec.machine ?? 'q35', { accel: spec.accel, 'memory-backend': memoryNodes(spec).length === 1 ? memoryNodes(spec)[0]!.id : undefined }),
    '-cpu', cpuOption(spec),
    '-smp', String(spec.cpus),
    '-m', memorySize(spec.memoryMiB, spec.memoryPadKiB, memoryNodes(spec).length || 1),
    '-nodefaults',
    '-no-user-config',
    '-S',
    '-no-shutdown',
    '-msg', 'timestamp=on',
    '-display', 'none',
    '-pidfile', paths.pidfile,
    ...unixSocketChardev('qmp', paths.qmp),
    '-mon', 'chardev=qmp,mode=control',
    ...unixSocketChardev('qmp-query', paths.qmpQuery),
    '-mon', 'chardev=qmp-query,mode=control',
    ...unixSocketChardev('serial0', paths.serial, { logfile: paths.serialLog, logappend: true }),
    '-serial', 'chardev:serial0',
    '-device', 'virtio-serial-pci,id=virtio-serial0',
    ...unixSocketChardev(GUEST_AGENT_CHARDEV, paths.guestAgent),
    '-device', `virtserialport,bus=virtio-serial0.0,chardev=${GUEST_AGENT_CHARDEV},name=org.qemu.guest_agent.0`,
    '-device', 'VGA,id=video0',
    '-vnc', `unix:${escapeOptionValue(paths.vnc)}`,
    '-device', 'virtio-rng-pci,id=rng0',
  ];
  argv.push(...memoryArgv(spec));
  for (let i = 0; i < HOTPLUG_PORTS; i++) {
    argv.push('-device', options('pcie-root-port', { id: hotplugPortId(i), chassis: i + 1 }));
  }
  for (const disk of spec.disks) argv.push(...diskArgv(disk, spec.tuning));
  for (const nic of spec.nics) argv.push('-netdev', netdevOption(nic), '-device', options('virtio-net-pci', { id: `${nic.id}-dev`, netdev: nic.id, mac: nic.mac, bus: nic.bus, ...nicQueueProps(nic) }));
  // The balloon reports the guest's memory size (query-balloon, for /metrics). On the root bus, after every other
  // device, so it takes no hot-plug port and moves no existing device to another PCI address.
  argv.push('-device', options('virtio-balloon-pci', { id: 'balloon0', 'free-page-reporting': spec.tuning?.freePageReporting === true ? true : undefined }));
  if (spec.vmgenid !== undefined) argv.push('-device', options('vmgenid', { id: 'vmgenid0', guid: spec.vmgenid }));
  if (spec.kernel !== undefined) {
    argv.push('-kernel', spec.kernel.path);
    if (spec.kernel.initrd !== undefined) argv.push('-initrd', spec.kernel.initrd);
    if (spec.kernel.cmdline !== undefined) argv.push('-append', spec.kernel.cmdline);
  }
  if (spec.incoming !== undefined) argv.push('-incoming', spec.incoming);
  return argv;
}

/** `host` passes the host CPU through (KVM only), `max` is all TCG can emulate; a named model is checked by QEMU
 * against the host under KVM (`enforce`: a missing feature refuses the start instead of silently dropping it). */
function cpuOption(spec: QemuSpec): string {
  const model = spec.tuning?.cpuModel;
  if (model === undefined) return spec.accel === 'kvm' ? 'host' : 'max';
  return spec.accel === 'kvm' && model !== 'host' && model !== 'max' ? `${escapeOptionValue(model)},enforce` : escapeOptionValue(model);
}

interface MemoryNode {
  id: string;
  sizeMiB: number;
  cpus: string;
}

/** `mib` MiB, or in KiB with `padKiB` more per RAM block (`blocks` of them) where padded: `1048584K`. */
function memorySize(mib: number, padKiB: number | undefined, blocks = 1): string {
  if (padKiB === undefined || padKiB === 0) return `${mib}M`;
  return `${mib * 1024 + padKiB * blocks}K`;
}

/** The guest's memory as explicit backends: one per NUMA node, or one for huge pages; none for the default. */
function memoryNodes(spec: QemuSpec): MemoryNode[] {
  const nodes = spec.tuning?.numaNodes ?? 1;
  if (nodes === 1 && spec.tuning?.hugepages !== true && spec.memoryFile === undefined && spec.ramBackend !== true) return [];
  const cpusPerNode = spec.cpus / nodes;
  return Array.from({ length: nodes }, (_, i) => {
    const first = i * cpusPerNode;
    const last = first + cpusPerNode - 1;
    return { id: `ram-node${i}`, sizeMiB: spec.memoryMiB / nodes, cpus: first === last ? String(first) : `${first}-${last}` };
  });
}

function memoryArgv(spec: QemuSpec): string[] {
  const nodes = memoryNodes(spec);
  const argv: string[] = [];
  for (const [i, node] of nodes.entries()) {
    const file = spec.memoryFile;
    const backend =
      file !== undefined
        ? options('memory-backend-file', { id: node.id, size: memorySize(node.sizeMiB, spec.memoryPadKiB), 'mem-path': file.path, share: file.share })
        : spec.tuning?.hugepages === true
        ? // prealloc: a start without enough huge pages fails at once, not when the guest first touches its memory.
          options('memory-backend-file', { id: node.id, size: memorySize(node.sizeMiB, spec.memoryPadKiB), 'mem-path': spec.hugepagePath, prealloc: true, share: false })
        : options('memory-backend-ram', { id: node.id, size: memorySize(node.sizeMiB, spec.memoryPadKiB) });
    argv.push('-object', backend);
    if (nodes.length > 1) argv.push('-numa', options('node', { nodeid: i, cpus: node.cpus, memdev: node.id }));
  }
  return argv;
}

/** QEMU's cache modes, as the three switches -blockdev and the device take. */
function cacheSwitches(mode: DiskCacheMode | undefined): { direct?: boolean; noFlush?: boolean; writeCache?: boolean } {
  if (mode === undefined) return {};
  return {
    direct: usesDirectIo(mode),
    noFlush: mode === 'unsafe',
    writeCache: mode !== 'writethrough' && mode !== 'directsync',
  };
}

export function iothreadId(diskId: string): string {
  return `io-${diskId}`;
}

/** The disk's protocol node (node-name first, as golden files pin it); `aio` is a property of host files only. */
function protocolBlockdev(disk: QemuDisk, props: Record<string, string | number | boolean | undefined>): string {
  const { driver, ...where } = protocolProps(disk.path);
  return options(`driver=${driver}`, { 'node-name': `${disk.id}-file`, ...where, ...props, ...(driver === 'file' ? {} : { aio: undefined }) });
}

function diskArgv(disk: QemuDisk, tuning: QemuSpec['tuning']): string[] {
  const cache = cacheSwitches(tuning?.diskCache);
  const cacheProps = { 'cache.direct': cache.direct, 'cache.no-flush': cache.noFlush };
  const discard = tuning?.discard === true && !disk.readonly ? 'unmap' : undefined;
  const argv: string[] = [];
  if (tuning?.iothreads === true) argv.push('-object', options('iothread', { id: iothreadId(disk.id) }));
  argv.push(
    '-blockdev',
    protocolBlockdev(disk, { 'read-only': disk.readonly, ...cacheProps, aio: tuning?.diskAio, discard }),
    '-blockdev',
    options(`driver=${disk.format}`, { 'node-name': disk.id, file: `${disk.id}-file`, 'read-only': disk.readonly, ...cacheProps, discard }),
    '-device',
    options('virtio-blk-pci', {
      id: `${disk.id}-dev`,
      drive: disk.id,
      bus: disk.bus,
      bootindex: disk.bootIndex,
      'write-cache': cache.writeCache,
      iothread: tuning?.iothreads === true ? iothreadId(disk.id) : undefined,
      'num-queues': tuning?.diskQueues,
    }),
  );
  return argv;
}

/** Multi-queue virtio-net: one interrupt vector per queue each way, plus config and control. */
export function nicQueueProps(nic: QemuNic): Record<string, string | number | boolean> {
  if (nic.backend.kind !== 'tap' || nic.backend.queues === undefined || nic.backend.queues < 2) return {};
  return { mq: true, vectors: 2 * nic.backend.queues + 2 };
}
