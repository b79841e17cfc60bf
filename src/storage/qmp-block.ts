/**
 * Block-layer helpers over QMP for live storage operations: which node a disk's device uses, free hotplug
 * ports, hot-plugging a disk, and running jobs (snapshot-save/load/delete, block-commit/stream) to completion
 * by their events.
 */
import { protocolNode } from '../qemu/protocol-node.ts';
import { randomBytes } from 'node:crypto';
import { VirtnodeError } from '../lib/errors.ts';
import { delaypoint } from '../lib/failpoint.ts';
import { reportsNoSpace } from '../lib/no-space.ts';
import { HOTPLUG_PORTS, hotplugPortId } from '../qemu/argv.ts';
import { devicePlacement } from '../qemu/placement.ts';
import { blockdevAdd, type BlockInfo, deviceDel, jobComplete, jobDismiss, type PciDeviceInfo, queryBlock, queryJobs, queryNamedBlockNodes, queryPci } from '../qmp/commands.ts';
import type { QmpConnection, QmpEvent } from '../qmp/connection.ts';

export const DEVICE_DELETE_TIMEOUT_MS = 60_000;
export const JOB_TIMEOUT_MS = 30 * 60_000;

/** The QEMU device id of a disk (see buildArgv). */
export function deviceId(diskId: string): string {
  return `${diskId}-dev`;
}

/** A node name unique within one QEMU run (node names are limited to 31 characters). */
export function newNodeName(diskId: string): string {
  return `${diskId.slice(0, 20)}-o${randomBytes(3).toString('hex')}`;
}

const NEW_NODE_NAME = /-o[0-9a-f]{6}$/;

/**
 * Nodes virtnode added (newNodeName) whose file no disk uses: an overlay opened for a snapshot by a process that
 * crashed before the switch. Left in QEMU, such a node keeps the disk's node as its backing and blocks the next
 * snapshot.
 */
export async function strayAddedNodes(qmp: QmpConnection, inUse: ReadonlySet<string>): Promise<string[]> {
  const nodes = await queryNamedBlockNodes(qmp, { flat: true });
  return nodes.filter((n) => NEW_NODE_NAME.test(n['node-name']) && n.drv !== 'file' && !inUse.has(n.file)).map((n) => n['node-name']);
}

export interface DiskNode {
  /** The node the device reads and writes (the top of the chain). */
  node: string;
  /** Files of the chain, top first. */
  files: string[];
  info: BlockInfo;
}

/** The top node of a disk's device and the files of its chain, as QEMU uses them right now. */
export async function diskNode(qmp: QmpConnection, diskId: string): Promise<DiskNode | undefined> {
  const dev = deviceId(diskId);
  const block = (await queryBlock(qmp)).find((b) => b.qdev === dev || (b.qdev ?? '').includes(`/${dev}/`));
  const inserted = block?.inserted;
  if (block === undefined || inserted === undefined || inserted['node-name'] === undefined) return undefined;
  const files: string[] = [];
  for (let image: typeof inserted.image | undefined = inserted.image; image !== undefined; image = image['backing-image']) files.push(image.filename);
  return { node: inserted['node-name'], files, info: block };
}

/** The format node (not the protocol node) that has `path` open. */
export async function formatNodeOf(qmp: QmpConnection, path: string): Promise<string | undefined> {
  const nodes = await queryNamedBlockNodes(qmp, { flat: true });
  return nodes.find((n) => n.file === path && n.drv !== 'file')?.['node-name'];
}

/** Where each device sits on the PCI buses ("pcie.0:3", "hotplug0:0"), by QEMU device id. */
export async function deviceSlots(qmp: QmpConnection): Promise<Map<string, string>> {
  const buses = await queryPci(qmp);
  const slots = new Map<string, string>();
  const walk = (devices: PciDeviceInfo[], bus: string) => {
    for (const d of devices) {
      if (d.qdev_id !== '') slots.set(d.qdev_id, `${bus}:${d.slot}`);
      if (d.pci_bridge?.devices !== undefined) walk(d.pci_bridge.devices, d.qdev_id);
    }
  };
  for (const b of buses) walk(b.devices, 'pcie.0');
  return slots;
}

/** The first empty PCIe root port for hot-plugging, or undefined when all are taken. */
export async function freeHotplugPort(qmp: QmpConnection): Promise<string | undefined> {
  // Asked of QOM as a move asks it (devicePlacement): which ports exist, and which have a device behind them.
  const placement = await devicePlacement(qmp);
  const taken = new Set([...placement.values()].map((p) => p.bus));
  for (let i = 0; i < HOTPLUG_PORTS; i++) {
    const port = hotplugPortId(i);
    if (placement.has(port) && !taken.has(port)) return port;
  }
  return undefined;
}

/** Opens an image as a block node (the format node named `node`, its file node `${node}-file`). */
export async function addBlockNode(
  qmp: QmpConnection,
  node: string,
  path: string,
  format: string,
  options: { backing?: string | null; readOnly?: boolean } = {},
): Promise<void> {
  await blockdevAdd(qmp, {
    driver: format,
    'node-name': node,
    file: { ...protocolNode(path), 'node-name': `${node}-file`, 'read-only': options.readOnly ?? false },
    'read-only': options.readOnly ?? false,
    ...(options.backing === undefined ? {} : { backing: options.backing }),
  });
}

/**
 * Removes a device and waits for DEVICE_DELETED: the guest must let go of it first (PCIe hot-unplug goes
 * through the guest's driver, 5 s or more on Linux), so only then is the drive free to close.
 */
export async function removeDevice(qmp: QmpConnection, id: string, timeoutMs = DEVICE_DELETE_TIMEOUT_MS): Promise<void> {
  const deleted = qmp.waitForEvent((e) => e.event === 'DEVICE_DELETED' && e.data?.['device'] === id, { timeoutMs });
  deleted.catch(() => {});
  await deviceDel(qmp, { id });
  try {
    await deleted;
  } catch (e) {
    throw new VirtnodeError('TIMEOUT', `the guest did not release device ${id} within ${timeoutMs / 1000} s`, {
      cause: e,
      hint: 'the guest may lack PCIe hotplug support or be busy; stop the instance and detach it offline',
    });
  }
}

/**
 * Runs a QEMU job (snapshot-save/-load/-delete, created with manual dismiss) to its end: waits for
 * JOB_STATUS_CHANGE to `concluded`, reads its error if any, dismisses it.
 */
export async function runJob(qmp: QmpConnection, jobId: string, start: () => Promise<unknown>, timeoutMs = JOB_TIMEOUT_MS): Promise<void> {
  const concluded = qmp.waitForEvent((e) => e.event === 'JOB_STATUS_CHANGE' && e.data?.['id'] === jobId && e.data?.['status'] === 'concluded', {
    timeoutMs,
  });
  concluded.catch(() => {});
  await start();
  await concluded;
  const job = (await queryJobs(qmp)).find((j) => j.id === jobId);
  await jobDismiss(qmp, { id: jobId }).catch(() => {});
  if (job?.error !== undefined) throw new VirtnodeError(reportsNoSpace(job.error) ? 'NO_SPACE' : 'QMP_COMMAND', `QEMU job ${jobId} failed: ${job.error}`);
}

/**
 * Runs a block job (block-commit, block-stream) to its end by its events. An active commit reaches READY
 * (source and target in sync) and is then completed, which pivots the device onto the base.
 */
export async function runBlockJob(qmp: QmpConnection, jobId: string, start: () => Promise<unknown>, timeoutMs = JOB_TIMEOUT_MS): Promise<void> {
  const events: QmpEvent[] = [];
  const off = qmp.onEvent((e) => {
    if (e.data?.['device'] === jobId) events.push(e);
  });
  try {
    const done = qmp.waitForEvent(
      (e) => e.data?.['device'] === jobId && (e.event === 'BLOCK_JOB_COMPLETED' || e.event === 'BLOCK_JOB_CANCELLED' || e.event === 'BLOCK_JOB_READY'),
      { timeoutMs },
    );
    done.catch(() => {});
    await start();
    let event = await done;
    if (event.event === 'BLOCK_JOB_READY') {
      const completed = qmp.waitForEvent((e) => e.data?.['device'] === jobId && (e.event === 'BLOCK_JOB_COMPLETED' || e.event === 'BLOCK_JOB_CANCELLED'), {
        timeoutMs,
      });
      completed.catch(() => {});
      await delaypoint('block-job.ready');
      await jobComplete(qmp, { id: jobId });
      event = await completed;
    }
    if (event.event === 'BLOCK_JOB_CANCELLED') throw new VirtnodeError('QMP_COMMAND', `block job ${jobId} was cancelled`);
    const error = event.data?.['error'];
    if (typeof error === 'string') throw new VirtnodeError(reportsNoSpace(error) ? 'NO_SPACE' : 'QMP_COMMAND', `block job ${jobId} failed: ${error}`);
  } finally {
    off();
  }
}
