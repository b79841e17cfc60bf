/**
 * The QMP vocabulary of live migration and NBD disk copy: typed helpers over the verbatim names in
 * commands.ts. Reply types keep QEMU's field names; only the fields virtnode reads are typed.
 */
import { QMP_COMMANDS } from './commands.ts';
import type { QmpConnection, QmpExecuteOptions } from './connection.ts';

/** QEMU's MigrationStatus. */
export type MigrationStatus =
  | 'none'
  | 'setup'
  | 'cancelling'
  | 'cancelled'
  | 'active'
  | 'postcopy-active'
  | 'postcopy-paused'
  | 'postcopy-recover'
  | 'completed'
  | 'failed'
  | 'colo'
  | 'pre-switchover'
  | 'device'
  | 'wait-unplug';

export interface MigrationRamStats {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  'dirty-pages-rate': number;
  mbps: number;
  'dirty-sync-count': number;
  'postcopy-requests': number;
  'page-size': number;
}

export interface MigrationInfo {
  status?: MigrationStatus;
  ram?: MigrationRamStats;
  'total-time'?: number;
  'expected-downtime'?: number;
  downtime?: number;
  'setup-time'?: number;
  'cpu-throttle-percentage'?: number;
  'error-desc'?: string;
  /** The destination's listening addresses (migrate-incoming on port 0 picks one). */
  'socket-address'?: Array<{ type: string; host?: string; port?: string }>;
}

/** The migration capabilities virtnode sets. */
export type MigrationCapability = 'events' | 'auto-converge' | 'postcopy-ram' | 'pause-before-switchover' | 'x-ignore-shared';

export interface MigrationParameters {
  /** Longest acceptable pause at switch-over, ms. */
  'downtime-limit'?: number;
  /** Bytes per second. */
  'max-bandwidth'?: number;
  /** Bytes per second once in post-copy (QEMU's default: unlimited, whatever max-bandwidth says). */
  'max-postcopy-bandwidth'?: number;
  'cpu-throttle-initial'?: number;
  'cpu-throttle-increment'?: number;
}

export interface DirtyRateInfo {
  /** MiB/s, once measured. */
  'dirty-rate'?: number;
  status: 'unstarted' | 'measuring' | 'measured';
  'calc-time': number;
}

export interface InetAddress {
  host: string;
  port: string;
}

export async function migrateSetCapabilities(qmp: QmpConnection, capabilities: Partial<Record<MigrationCapability, boolean>>, options: QmpExecuteOptions = {}): Promise<void> {
  const list = Object.entries(capabilities).map(([capability, state]) => ({ capability, state }));
  await qmp.execute(QMP_COMMANDS.migrateSetCapabilities, { capabilities: list }, options);
}

export async function migrateSetParameters(qmp: QmpConnection, parameters: MigrationParameters, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrateSetParameters, { ...parameters }, options);
}

export async function migrate(qmp: QmpConnection, uri: string, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrate, { uri }, options);
}

/** On a destination started with `-incoming defer`: listen on `uri` (`tcp:HOST:0` lets QEMU pick the port). */
export async function migrateIncoming(qmp: QmpConnection, uri: string, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrateIncoming, { uri }, options);
}

export async function migrateCancel(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrateCancel, undefined, options);
}

/** Leaves the `pre-switchover` pause (capability pause-before-switchover). */
export async function migrateContinue(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrateContinue, { state: 'pre-switchover' }, options);
}

export async function migrateStartPostcopy(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrateStartPostcopy, undefined, options);
}

/** On a destination whose post-copy link dropped (`postcopy-paused`): listen again on `uri`. */
export async function migrateRecover(qmp: QmpConnection, uri: string, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrateRecover, { uri }, options);
}

/**
 * Post-copy only, on either side: drops the migration channel so that QEMU enters `postcopy-paused` at once (a
 * link that went silent leaves TCP retrying for many minutes), ready for recovery.
 */
export async function migratePause(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migratePause, undefined, options);
}

/** On the source after a post-copy link dropped: reconnect to the destination's recovery address. */
export async function migrateResume(qmp: QmpConnection, uri: string, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.migrate, { uri, resume: true }, options);
}

export function queryMigrate(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<MigrationInfo> {
  return qmp.execute<MigrationInfo>(QMP_COMMANDS.queryMigrate, undefined, options);
}

/** Starts sampling the guest's dirty pages for `seconds` (query-dirty-rate reads the result). */
export async function calcDirtyRate(qmp: QmpConnection, seconds: number, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.calcDirtyRate, { 'calc-time': seconds }, options);
}

export function queryDirtyRate(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<DirtyRateInfo> {
  return qmp.execute<DirtyRateInfo>(QMP_COMMANDS.queryDirtyRate, undefined, options);
}

export async function nbdServerStart(qmp: QmpConnection, address: InetAddress, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.nbdServerStart, { addr: { type: 'inet', data: address } }, options);
}

export async function nbdServerStop(qmp: QmpConnection, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.nbdServerStop, undefined, options);
}

/** Exports a block node over the running NBD server under the name `name`. */
export async function blockExportAddNbd(qmp: QmpConnection, args: { id: string; node: string; name: string; writable: boolean }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.blockExportAdd, { type: 'nbd', id: args.id, 'node-name': args.node, name: args.name, writable: args.writable }, options);
}

export async function blockExportDel(qmp: QmpConnection, id: string, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.blockExportDel, { id }, options);
}

export interface BlockdevMirrorArgs {
  'job-id': string;
  device: string;
  target: string;
  /** `top`: only the top image (its backing chain already exists at the target); `full`: everything. */
  sync: 'top' | 'full';
  'auto-dismiss'?: boolean;
}

export async function blockdevMirror(qmp: QmpConnection, args: BlockdevMirrorArgs, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.blockdevMirror, { ...args }, options);
}

/**
 * Ends a block job. For a mirror that is ready, a cancel is a clean finish that does not pivot: the source
 * keeps writing to its own disk, the copy is complete (BLOCK_JOB_COMPLETED). `force` abandons it at once.
 */
export async function blockJobCancel(qmp: QmpConnection, args: { device: string; force?: boolean }, options: QmpExecuteOptions = {}): Promise<void> {
  await qmp.execute(QMP_COMMANDS.blockJobCancel, { ...args }, options);
}
