/**
 * The QMP vocabulary virtnode uses: wire names verbatim in one table, and small typed helpers over a
 * connection. Reply types keep QEMU's field names (kebab-case and all) so they can be checked against QEMU's
 * QAPI schema; only the fields virtnode reads are typed.
 */
import { isVirtnodeError } from '../lib/errors.ts';
import type { QmpConnection, QmpExecuteOptions, QmpVersion } from './connection.ts';

/** QMP command names, verbatim. */
export const QMP_COMMANDS = {
  capabilities: 'qmp_capabilities',
  queryStatus: 'query-status',
  cont: 'cont',
  stop: 'stop',
  systemPowerdown: 'system_powerdown',
  systemReset: 'system_reset',
  quit: 'quit',
  queryVersion: 'query-version',
  queryKvm: 'query-kvm',
  queryCpusFast: 'query-cpus-fast',
  queryBlock: 'query-block',
  queryBlockstats: 'query-blockstats',
  queryChardev: 'query-chardev',
  queryBalloon: 'query-balloon',
  queryPci: 'query-pci',
  qomList: 'qom-list',
  qomGet: 'qom-get',
  queryNamedBlockNodes: 'query-named-block-nodes',
  queryJobs: 'query-jobs',
  queryBlockJobs: 'query-block-jobs',
  humanMonitorCommand: 'human-monitor-command',
  netdevAdd: 'netdev_add',
  netdevDel: 'netdev_del',
  deviceAdd: 'device_add',
  deviceDel: 'device_del',
  blockdevAdd: 'blockdev-add',
  blockdevDel: 'blockdev-del',
  blockdevSnapshot: 'blockdev-snapshot',
  blockResize: 'block_resize',
  blockCommit: 'block-commit',
  jobComplete: 'job-complete',
  jobDismiss: 'job-dismiss',
  snapshotSave: 'snapshot-save',
  snapshotLoad: 'snapshot-load',
  snapshotDelete: 'snapshot-delete',
  transaction: 'transaction',
  balloon: 'balloon',
  queryMemorySizeSummary: 'query-memory-size-summary',
  queryRxFilter: 'query-rx-filter',
  migrate: 'migrate',
  migrateIncoming: 'migrate-incoming',
  migrateCancel: 'migrate_cancel',
  migrateContinue: 'migrate-continue',
  migrateRecover: 'migrate-recover',
  migratePause: 'migrate-pause',
  migrateStartPostcopy: 'migrate-start-postcopy',
  migrateSetCapabilities: 'migrate-set-capabilities',
  migrateSetParameters: 'migrate-set-parameters',
  queryMigrate: 'query-migrate',
  calcDirtyRate: 'calc-dirty-rate',
  queryDirtyRate: 'query-dirty-rate',
  nbdServerStart: 'nbd-server-start',
  nbdServerStop: 'nbd-server-stop',
  blockExportAdd: 'block-export-add',
  blockExportDel: 'block-export-del',
  blockdevMirror: 'blockdev-mirror',
  blockJobCancel: 'block-job-cancel',
  queryMachines: 'query-machines',
} as const;

/** QMP event names, verbatim. */
export const QMP_EVENTS = {
  shutdown: 'SHUTDOWN',
  powerdown: 'POWERDOWN',
  reset: 'RESET',
  stop: 'STOP',
  resume: 'RESUME',
  suspend: 'SUSPEND',
  wakeup: 'WAKEUP',
  guestPanicked: 'GUEST_PANICKED',
  deviceDeleted: 'DEVICE_DELETED',
  jobStatusChange: 'JOB_STATUS_CHANGE',
  blockJobCompleted: 'BLOCK_JOB_COMPLETED',
  blockJobReady: 'BLOCK_JOB_READY',
  blockJobError: 'BLOCK_JOB_ERROR',
  blockJobCancelled: 'BLOCK_JOB_CANCELLED',
  migration: 'MIGRATION',
} as const;

/** qemu-guest-agent command names, verbatim (the agent speaks the same framing, without a greeting). */
export const GUEST_AGENT_COMMANDS = {
  syncDelimited: 'guest-sync-delimited',
  ping: 'guest-ping',
  info: 'guest-info',
  networkGetInterfaces: 'guest-network-get-interfaces',
  exec: 'guest-exec',
  execStatus: 'guest-exec-status',
  fsfreezeFreeze: 'guest-fsfreeze-freeze',
  fsfreezeThaw: 'guest-fsfreeze-thaw',
  fsfreezeStatus: 'guest-fsfreeze-status',
  shutdown: 'guest-shutdown',
  setTime: 'guest-set-time',
  fileOpen: 'guest-file-open',
  fileRead: 'guest-file-read',
  fileWrite: 'guest-file-write',
  fileClose: 'guest-file-close',
} as const;

/** QEMU's RunState. */
export type RunState =
  | 'debug'
  | 'inmigrate'
  | 'internal-error'
  | 'io-error'
  | 'paused'
  | 'postmigrate'
  | 'prelaunch'
  | 'finish-migrate'
  | 'restore-vm'
  | 'running'
  | 'save-vm'
  | 'shutdown'
  | 'suspended'
  | 'watchdog'
  | 'guest-panicked'
  | 'colo';

export interface StatusInfo {
  running: boolean;
  status: RunState;
}

export interface KvmInfo {
  enabled: boolean;
  present: boolean;
}

export interface CpuInfoFast {
  'cpu-index': number;
  'qom-path': string;
  'thread-id': number;
  target: string;
  props?: { 'node-id'?: number; 'socket-id'?: number; 'die-id'?: number; 'core-id'?: number; 'thread-id'?: number };
}

export interface BlockImageInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'backing-filename'?: string;
  'backing-image'?: BlockImageInfo;
}

export interface BlockDeviceInfo {
  file: string;
  'node-name'?: string;
  ro: boolean;
  drv: string;
  'backing_file'?: string;
  encrypted: boolean;
  image: BlockImageInfo;
}

export interface BlockInfo {
  device: string;
  qdev?: string;
  type?: string;
  removable: boolean;
  locked: boolean;
  'tray_open'?: boolean;
  'io-status'?: 'ok' | 'failed' | 'nospace';
  inserted?: BlockDeviceInfo;
}

export interface BlockDeviceStats {
  rd_bytes: number;
  wr_bytes: number;
  rd_operations: number;
  wr_operations: number;
  flush_operations: number;
  rd_total_time_ns: number;
  wr_total_time_ns: number;
  flush_total_time_ns: number;
  wr_highest_offset: number;
  failed_rd_operations: number;
  failed_wr_operations: number;
}

export interface BlockStats {
  device?: string;
  'node-name'?: string;
  qdev?: string;
  stats: BlockDeviceStats;
  parent?: BlockStats;
  backing?: BlockStats;
}

export interface ChardevInfo {
  label: string;
  filename: string;
  'frontend-open': boolean;
}

export interface BalloonInfo {
  actual: number;
}

export interface PciDeviceInfo {
  qdev_id: string;
  slot: number;
  pci_bridge?: { devices?: PciDeviceInfo[] };
}

export interface PciInfo {
  bus: number;
  devices: PciDeviceInfo[];
}

export interface BlockDeviceInfoFlat {
  'node-name': string;
  drv: string;
  file: string;
  ro: boolean;
}

export interface JobInfo {
  id: string;
  type: string;
  status: string;
  error?: string;
}

export interface BlockJobInfo {
  type: string;
  device: string;
  ready: boolean;
}

/** A block node reference: a node name, null (blockdev-add's `backing: null`: none), or a node defined inline. */
export type BlockdevRef = string | null | BlockdevOptions;

/** blockdev-add's options, as virtnode uses them: a format or protocol driver and its node. */
export type BlockdevOptions = {
  driver: string;
  'node-name'?: string;
  'read-only'?: boolean;
  filename?: string;
  file?: BlockdevRef;
  backing?: BlockdevRef;
};

/** device_add: the driver, its id and bus, and the driver's own properties (drive, netdev, mac...). */
export interface DeviceAddArgs {
  driver: string;
  id?: string;
  bus?: string;
  [property: string]: string | number | boolean | undefined;
}

/** netdev_add: the backend type, its id, and the backend's own options (ifname, script...). */
export interface NetdevAddArgs {
  type: string;
  id: string;
  /** user-mode `hostfwd`/`guestfwd` are lists of `{str}` (QAPI's String). */
  [option: string]: string | number | boolean | Array<{ str: string }> | undefined;
}

export type BlockCommitArgs = {
  'job-id'?: string;
  device: string;
  'top-node'?: string;
  'base-node'?: string;
  'auto-dismiss'?: boolean;
};

export type SnapshotSaveArgs = {
  'job-id': string;
  tag: string;
  vmstate: string;
  devices: string[];
};

export type SnapshotDeleteArgs = {
  'job-id': string;
  tag: string;
  devices: string[];
};

/** The transaction actions virtnode uses. */
export type TransactionAction = { type: typeof QMP_COMMANDS.blockdevSnapshot; data: { node: string; overlay: string } };

export async function queryStatus(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<StatusInfo> {
  const reply = await qmp.execute<StatusInfo>(QMP_COMMANDS.queryStatus, undefined, options);
  return { running: reply.running, status: reply.status };
}

/** Starts or resumes the vCPUs (a RESUME event follows). */
export async function cont(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.cont, undefined, options);
}

/** Pauses the vCPUs (a STOP event follows). */
export async function stop(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.stop, undefined, options);
}

/** Presses the ACPI power button; the guest decides what to do (POWERDOWN now, SHUTDOWN if it complies). */
export async function systemPowerdown(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.systemPowerdown, undefined, options);
}

/** Hard reset of the machine (a RESET event follows). */
export async function systemReset(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.systemReset, undefined, options);
}

/**
 * Makes QEMU exit (a SHUTDOWN event comes first, then the reply, then the socket closes). QEMU may exit
 * before its reply is read, so a connection lost during `quit` counts as success.
 */
export async function quit(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<void> {
  const wasOpen = qmp.error === undefined;
  try {
    await qmp.execute(QMP_COMMANDS.quit, undefined, options);
  } catch (e) {
    if (!wasOpen || !isVirtnodeError(e, 'QMP_DISCONNECTED')) throw e;
  }
}

export function queryVersion(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<QmpVersion> {
  return qmp.execute<QmpVersion>(QMP_COMMANDS.queryVersion, undefined, options);
}

export function queryKvm(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<KvmInfo> {
  return qmp.execute<KvmInfo>(QMP_COMMANDS.queryKvm, undefined, options);
}

export function queryCpusFast(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<CpuInfoFast[]> {
  return qmp.execute<CpuInfoFast[]>(QMP_COMMANDS.queryCpusFast, undefined, options);
}

export function queryBlock(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<BlockInfo[]> {
  return qmp.execute<BlockInfo[]>(QMP_COMMANDS.queryBlock, undefined, options);
}

export function queryBlockstats(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<BlockStats[]> {
  return qmp.execute<BlockStats[]>(QMP_COMMANDS.queryBlockstats, undefined, options);
}

export function queryChardev(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<ChardevInfo[]> {
  return qmp.execute<ChardevInfo[]>(QMP_COMMANDS.queryChardev, undefined, options);
}

/** Runs a human monitor (HMP) command line and returns its text output. For diagnostics only. */
export function humanMonitorCommand(qmp: QmpConnection, commandLine: string, options: QmpExecuteOptions = {}): Promise<string> {
  return qmp.execute<string>(QMP_COMMANDS.humanMonitorCommand, { 'command-line': commandLine }, options);
}

/** The balloon's current size in bytes; fails when the machine has no balloon device. */
export function queryBalloon(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<BalloonInfo> {
  return qmp.execute<BalloonInfo>(QMP_COMMANDS.queryBalloon, undefined, options);
}

export function queryPci(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<PciInfo[]> {
  return qmp.execute<PciInfo[]>(QMP_COMMANDS.queryPci, undefined, options);
}

/** A QOM object's properties (`child<TYPE>` for the objects under it). */
export function qomList(qmp: QmpConnection, args: { path: string }, options: QmpExecuteOptions = {}): Promise<Array<{ name: string; type: string }>> {
  return qmp.execute<Array<{ name: string; type: string }>>(QMP_COMMANDS.qomList, args, options);
}

/** One property of a QOM object (a link's value is the linked object's path). */
export function qomGet<T>(qmp: QmpConnection, args: { path: string; property: string }, options: QmpExecuteOptions = {}): Promise<T> {
  return qmp.execute<T>(QMP_COMMANDS.qomGet, args, options);
}

export function queryNamedBlockNodes(qmp: QmpConnection, args: { flat?: boolean } = {}, options: QmpExecuteOptions = {}): Promise<BlockDeviceInfoFlat[]> {
  return qmp.execute<BlockDeviceInfoFlat[]>(QMP_COMMANDS.queryNamedBlockNodes, args, options);
}

export function queryJobs(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<JobInfo[]> {
  return qmp.execute<JobInfo[]>(QMP_COMMANDS.queryJobs, undefined, options);
}

export function queryBlockJobs(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<BlockJobInfo[]> {
  return qmp.execute<BlockJobInfo[]>(QMP_COMMANDS.queryBlockJobs, undefined, options);
}

export async function netdevAdd(qmp: QmpConnection, args: NetdevAddArgs, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.netdevAdd, args, options);
}

export async function netdevDel(qmp: QmpConnection, args: { id: string }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.netdevDel, args, options);
}

export async function deviceAdd(qmp: QmpConnection, args: DeviceAddArgs, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.deviceAdd, args, options);
}

/** Asks for a device's removal; it is gone only at DEVICE_DELETED (the guest must let go of it first). */
export async function deviceDel(qmp: QmpConnection, args: { id: string }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.deviceDel, args, options);
}

export async function blockdevAdd(qmp: QmpConnection, args: BlockdevOptions, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.blockdevAdd, args, options);
}

export async function blockdevDel(qmp: QmpConnection, args: { 'node-name': string }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.blockdevDel, args, options);
}

export async function blockResize(qmp: QmpConnection, args: { 'node-name': string; size: number }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.blockResize, args, options);
}

/** Starts a block-commit job (BLOCK_JOB_READY/COMPLETED follow, keyed by its job id as `device`). */
export async function blockCommit(qmp: QmpConnection, args: BlockCommitArgs, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.blockCommit, args, options);
}

export async function jobComplete(qmp: QmpConnection, args: { id: string }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.jobComplete, args, options);
}

export async function jobDismiss(qmp: QmpConnection, args: { id: string }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.jobDismiss, args, options);
}

/** Starts a snapshot-save job: an internal snapshot of `devices` with the memory state in `vmstate`. */
export async function snapshotSave(qmp: QmpConnection, args: SnapshotSaveArgs, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.snapshotSave, args, options);
}

export async function snapshotLoad(qmp: QmpConnection, args: SnapshotSaveArgs, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.snapshotLoad, args, options);
}

export async function snapshotDelete(qmp: QmpConnection, args: SnapshotDeleteArgs, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.snapshotDelete, args, options);
}

/** Runs the actions atomically: all of them take effect, or none does. */
export async function transaction(qmp: QmpConnection, args: { actions: TransactionAction[] }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.transaction, args, options);
}

/** Asks the guest's balloon driver to leave the guest `value` bytes (at most the memory it booted with). */
export async function balloon(qmp: QmpConnection, args: { value: number }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.balloon, args, options);
}

/** The memory the machine booted with (`base-memory`, bytes). */
export function queryMemorySizeSummary(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<{ 'base-memory': number }> {
  return qmp.execute<{ 'base-memory': number }>(QMP_COMMANDS.queryMemorySizeSummary, undefined, options);
}

/** Each NIC's device name and MAC as QEMU has them now. */
export function queryRxFilter(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<Array<{ name: string; 'main-mac': string }>> {
  return qmp.execute<Array<{ name: string; 'main-mac': string }>>(QMP_COMMANDS.queryRxFilter, undefined, options);
}

/** query-migrate: the status of the outgoing or incoming migration (only the fields read here). */
export interface MigrationInfo {
  status?: 'none' | 'setup' | 'cancelling' | 'cancelled' | 'active' | 'postcopy-active' | 'completed' | 'failed' | 'pre-switchover' | 'device' | 'wait-unplug';
  'error-desc'?: string;
  ram?: { transferred: number; total: number };
}

export interface MachineInfo {
  name: string;
  alias?: string;
}

/** Starts an outgoing migration to `uri` (here `unix:PATH`: a socket virtnode listens on and writes to a file). */
export async function migrate(qmp: QmpConnection, args: { uri: string }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrate, args, options);
}

export async function migrateSetParameters(qmp: QmpConnection, args: { 'max-bandwidth'?: number }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrateSetParameters, args, options);
}

/** Starts the incoming side of a QEMU started with `-incoming defer`. */
export async function migrateIncoming(qmp: QmpConnection, args: { uri: string }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrateIncoming, args, options);
}

export function queryMigrate(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<MigrationInfo> {
  return qmp.execute<MigrationInfo>(QMP_COMMANDS.queryMigrate, undefined, options);
}

export function queryMachines(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<MachineInfo[]> {
  return qmp.execute<MachineInfo[]>(QMP_COMMANDS.queryMachines, undefined, options);
}
