/**
 * Warm starts: a guest's memory saved once (a template's warm state) and loaded into new QEMU processes. The
 * state moves over a UNIX socket between QEMU's migration and a file (QEMU 7.2 has no `file:` migration, and
 * Node cannot pass descriptors with `getfd`); no program is run for it.
 */
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { VirtnodeError } from '../../../lib/errors.ts';
import type { WarmModel } from '../../../templates/model.ts';
import type { Accel, Instance, WarmRuntime } from '../../model.ts';
import { bootCmdlineFor } from '../../tcg-boot.ts';
import { HOTPLUG_PORTS, hotplugPortId, nicQueueProps } from '../../../qemu/argv.ts';
import type { QemuNic, QemuSpec, RuntimePaths } from '../../../qemu/spec.ts';
import * as qmpCommand from '../../../qmp/commands.ts';
import type { QmpConnection } from '../../../qmp/connection.ts';
import { migrateSetCapabilities } from '../../../qmp/migration.ts';

const POLL_MS = 20;
/** No throttle while saving: the stream goes to a local file (QEMU's default is 32 MiB/s). */
const SAVE_BANDWIDTH_BYTES_PER_S = 64 * 1024 ** 3;

/**
 * The one QEMU spec of a warm state, for the boot that saves it and every start that loads it: the same machine,
 * CPUs, memory, devices and order; one disk (`disk0`), no NIC (NICs are hot-plugged after the load, each with its
 * own MAC) and a VM generation ID device (each load gets a new GUID).
 */
export function warmQemuSpec(
  model: WarmLayout,
  p: { name: string; uuid: string; smbiosUuid: string; diskPath: string; paths: RuntimePaths; vmgenid: string; incoming: boolean; hugepagePath?: string; ramPath?: string; ramBackend?: boolean },
): QemuSpec {
  const spec: QemuSpec = {
    name: p.name,
    uuid: p.uuid,
    smbiosUuid: p.smbiosUuid,
    accel: model.accel,
    machine: model.machine,
    cpus: model.cpus,
    memoryMiB: model.memoryMiB,
    disks: [{ id: 'disk0', path: p.diskPath, format: 'qcow2', readonly: false, ...(model.boot === undefined ? { bootIndex: 1 } : {}) }],
    nics: [],
    vmgenid: p.vmgenid,
    ...(p.incoming ? { incoming: 'defer' as const } : {}),
    paths: p.paths,
  };
  if (model.tuning !== undefined) spec.tuning = model.tuning;
  if (model.memoryPadKiB !== undefined && model.memoryPadKiB > 0) spec.memoryPadKiB = model.memoryPadKiB;
  if (p.hugepagePath !== undefined) spec.hugepagePath = p.hugepagePath;
  // The boot that saves the state writes its RAM into the file; a load maps it copy-on-write.
  if (model.ramFile !== undefined && p.ramPath !== undefined) spec.memoryFile = { path: p.ramPath, share: !p.incoming };
  // A live move's target: the same RAM block (`ram-node0`), without the file (the memory comes over the move).
  else if (p.ramBackend === true) spec.ramBackend = true;
  if (model.boot !== undefined) {
    spec.kernel = { path: model.boot.kernel };
    if (model.boot.initrd !== undefined) spec.kernel.initrd = model.boot.initrd;
    if (model.boot.cmdline !== undefined) spec.kernel.cmdline = bootCmdlineFor(model.boot.cmdline, model.accel);
  }
  return spec;
}

/** What of a warm state's device model its QEMU spec is made of (a live move rebuilds it from the instance's record). */
export type WarmLayout = Pick<WarmModel, 'machine' | 'accel' | 'cpus' | 'memoryMiB' | 'boot' | 'tuning' | 'memoryPadKiB' | 'ramFile'>;

/**
 * The QEMU spec a warm-started instance runs with, rebuilt from its record (runtime `warm`, recorded at the load)
 * for a live move's target: the same machine, RAM block, padding, generation ID, disk and NIC ports as the
 * source, so the migration stream finds the same device model; the guest sees no new generation.
 */
export function warmRunningSpec(instance: Instance, warm: WarmRuntime, p: { accel: Accel; paths: RuntimePaths; nics: QemuNic[] }): QemuSpec {
  const [disk0, ...more] = instance.spec.disks;
  if (disk0 === undefined) throw new VirtnodeError('INTERNAL', `${instance.name} has no disk to run its warm layout with`);
  const layout: WarmLayout = {
    machine: warm.machine,
    accel: p.accel,
    cpus: instance.spec.cpus,
    memoryMiB: instance.spec.memoryMiB,
    ...(instance.spec.boot === undefined ? {} : { boot: instance.spec.boot }),
    ...(instance.spec.tuning === undefined ? {} : { tuning: instance.spec.tuning }),
    ...(instance.spec.runtime?.memoryPadKiB === undefined ? {} : { memoryPadKiB: instance.spec.runtime.memoryPadKiB }),
  };
  const spec = warmQemuSpec(layout, {
    name: instance.name,
    uuid: instance.uuid,
    smbiosUuid: instance.smbiosUuid,
    diskPath: disk0.path,
    paths: p.paths,
    vmgenid: warm.vmgenid,
    incoming: false,
    ...(warm.ramBackend === true ? { ramBackend: true } : {}),
  });
  // Disks attached since the load (none at a warm launch) as a cold start has them.
  spec.disks.push(...more.map((d) => ({ id: d.id, path: d.path, format: d.format, readonly: d.readonly ?? false })));
  spec.nics = onHotplugPorts(p.nics);
  return spec;
}

/** A warm start's NICs, each on its own PCIe root port in order (where plugNics plugs them after the load). */
export function onHotplugPorts(nics: QemuNic[]): QemuNic[] {
  if (nics.length > HOTPLUG_PORTS) {
    throw new VirtnodeError('INVALID', `a warm launch can plug at most ${HOTPLUG_PORTS} NICs (it asked for ${nics.length})`, { field: 'networks' });
  }
  return nics.map((nic, port) => ({ ...nic, bus: hotplugPortId(port) }));
}

/**
 * Whether a warm state of this model keeps the guest's RAM in a file: not with huge pages, NUMA nodes or free page
 * reporting (they decide how the RAM is backed and given back); other knobs (a CPU model, which a live move needs,
 * pinning, queues, caches) leave the RAM as it is.
 */
export function ramInFile(model: Pick<WarmModel, 'tuning'>): boolean {
  const t = model.tuning;
  return t === undefined || (t.hugepages !== true && (t.numaNodes ?? 1) === 1 && t.freePageReporting !== true);
}

/** The machine type `q35` stands for in this QEMU (`pc-q35-7.2`): a state loads only into the same one. */
export async function resolvedMachine(qmp: QmpConnection, alias = 'q35'): Promise<string> {
  const machines = await qmpCommand.queryMachines(qmp);
  return machines.find((m) => m.alias === alias)?.name ?? alias;
}

async function waitForMigration(qmp: QmpConnection, deadline: number, what: string): Promise<void> {
  for (;;) {
    const info = await qmpCommand.queryMigrate(qmp);
    if (info.status === 'completed') return;
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new VirtnodeError('COMMAND_FAILED', `${what} failed: ${info['error-desc'] ?? info.status}`);
    }
    if (Date.now() > deadline) throw new VirtnodeError('TIMEOUT', `${what} did not finish in time (status ${info.status ?? 'none'})`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * Saves the paused guest's state to `statePath` (QEMU writes its migration stream to `socketPath`, where this
 * process listens and copies it to the file). Returns the state's size in bytes.
 */
export async function saveState(qmp: QmpConnection, statePath: string, socketPath: string, timeoutMs: number, options: { ramInFile?: boolean } = {}): Promise<number> {
  rmSync(socketPath, { force: true });
  const server = createServer();
  const received = new Promise<number>((resolve, reject) => {
    server.once('connection', (socket: Socket) => {
      server.close();
      const file = createWriteStream(statePath, { mode: 0o600 });
      pipeline(socket, file).then(() => resolve(file.bytesWritten), reject);
    });
    server.once('error', reject);
  });
  received.catch(() => {});
  await new Promise<void>((resolve, reject) => server.listen(socketPath, resolve).once('error', reject));
  try {
    await qmpCommand.migrateSetParameters(qmp, { 'max-bandwidth': SAVE_BANDWIDTH_BYTES_PER_S });
    // The RAM is in its own file (shared mapping): the stream carries the devices (and the small ROM/VGA blocks) only.
    if (options.ramInFile === true) await migrateSetCapabilities(qmp, { 'x-ignore-shared': true });
    await qmpCommand.migrate(qmp, { uri: `unix:${socketPath}` });
    await waitForMigration(qmp, Date.now() + timeoutMs, 'saving the memory state');
    return await received;
  } finally {
    server.close();
    rmSync(socketPath, { force: true });
  }
}

/**
 * Loads a state into a QEMU started with `-incoming defer`: QEMU listens on `socketPath`, this process streams the
 * file into it. Returns once the guest is loaded (still paused: the caller plugs NICs, then sends `cont`).
 */
export async function loadState(qmp: QmpConnection, statePath: string, socketPath: string, timeoutMs: number, options: { ramInFile?: boolean } = {}): Promise<void> {
  rmSync(socketPath, { force: true });
  // A stream saved with x-ignore-shared is read with it; the RAM is already there (the file, mapped privately).
  if (options.ramInFile === true) await migrateSetCapabilities(qmp, { 'x-ignore-shared': true });
  await qmpCommand.migrateIncoming(qmp, { uri: `unix:${socketPath}` });
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect(socketPath, () => resolve(s));
    s.once('error', reject);
  });
  const sent = pipeline(createReadStream(statePath), socket);
  sent.catch(() => {});
  try {
    const deadline = Date.now() + timeoutMs;
    // The incoming side reports `inmigrate` until the whole state is in; then the guest is paused (-S).
    let status: string;
    for (;;) {
      status = (await qmpCommand.queryStatus(qmp)).status;
      if (status !== 'inmigrate') break;
      if (Date.now() > deadline) throw new VirtnodeError('TIMEOUT', `loading the memory state from ${statePath} did not finish in time`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    // QEMU closes the connection once it has read the state's end marker, which can come before this side has
    // written (or seen the end of) the rest of the file: the stream then fails (a premature close, a broken pipe)
    // although the whole state is in. QEMU's word decides: loaded and paused. A load that fails ends its process.
    const loaded = status === 'paused' || status === 'prelaunch';
    await sent.catch((e: unknown) => {
      if (!loaded) throw e;
    });
    // The loaded QEMU keeps its capabilities: left as a cold start's, so its later migrations (a live move) are plain.
    if (options.ramInFile === true) await migrateSetCapabilities(qmp, { 'x-ignore-shared': false });
  } finally {
    socket.destroy();
    rmSync(socketPath, { force: true });
  }
}

/** QMP's netdev_add arguments for a NIC backend (the object form of argv.ts's `-netdev`). */
export function netdevArgs(nic: QemuNic): qmpCommand.NetdevAddArgs {
  const b = nic.backend;
  if (b.kind === 'tap') return { type: 'tap', id: nic.id, ifname: b.ifname, script: 'no', downscript: 'no', ...(b.queues !== undefined && b.queues > 1 ? { queues: b.queues } : {}) };
  if ((b.guestForwards ?? []).length > 0) {
    throw new VirtnodeError('INVALID', 'a warm launch cannot serve the seed over HTTP', { field: 'seed', hint: 'leave --seed out (the seed goes through the guest agent)' });
  }
  const hostfwd = (b.forwards ?? []).map((f) => ({ str: `${f.protocol}:${f.hostAddress}:${f.hostPort}-:${f.guestPort}` }));
  return { type: 'user', id: nic.id, ...(b.restrict === true ? { restrict: true } : {}), ...(hostfwd.length > 0 ? { hostfwd } : {}) };
}

/** Plugs the instance's NICs, one PCIe root port each, into a loaded (paused) guest: new MACs, seen at `cont`. */
export async function plugNics(qmp: QmpConnection, nics: QemuNic[]): Promise<void> {
  for (const nic of onHotplugPorts(nics)) {
    await qmpCommand.netdevAdd(qmp, netdevArgs(nic));
    await qmpCommand.deviceAdd(qmp, { driver: 'virtio-net-pci', id: `${nic.id}-dev`, netdev: nic.id, mac: nic.mac, bus: nic.bus!, ...nicQueueProps(nic) });
  }
}
