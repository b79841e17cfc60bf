import type { ProcessIdentity } from '../lib/proc.ts';
import type { Instance, InstanceRuntime } from './model.ts';
import { VirtnodeError } from '../lib/errors.ts';
import type { WarmModel } from '../templates/model.ts';

/**
 * The seam between the instance lifecycle (InstanceService: states, locks, networks, records) and the program
 * that runs an instance. QEMU runs VMs today (drivers/qemu); a system-container driver (LXC) is a second
 * implementation and one entry in drivers/index.ts. Nothing above the drivers branches on the instance type.
 */
/** What a warm start loads: a template's saved guest and the device model it was saved from. */
export interface WarmBoot {
  statePath: string;
  model: WarmModel;
}

export interface StartOptions {
  signal?: AbortSignal;
  /**
   * The instance has another way out (a NIC on a NAT or bridged network): its user-mode NIC then carries only
   * its forwards (SSH, ports, the HTTP seed) and cannot reach the host's loopback services at 10.0.2.2.
   */
  restrictUserNetwork?: boolean;
  /** Load this saved guest instead of booting (a warm launch; QEMU driver only). */
  warm?: WarmBoot;
}

export interface InstanceDriver {
  readonly name: DriverName;
  readonly capabilities: DriverCapabilities;

  /**
   * Host checks and choices for a start (e.g. the accelerator), made before anything changes: a failure here
   * leaves the instance's state as it was.
   */
  prepareStart(instance: Instance, options: StartOptions): Promise<PreparedStart>;
  /**
   * Graceful stop (the guest's own shutdown, up to `timeoutMs`), or forced with `force` or when the guest cannot
   * be asked. Returns once the process is gone; the caller records the state.
   */
  stop(instance: Instance, options: { force: boolean; timeoutMs: number }): Promise<StopMethod>;
  pause(instance: Instance): Promise<void>;
  resume(instance: Instance): Promise<void>;
  /** Ends the instance's recorded process at once, if it is still this instance's (a reused pid is never killed). */
  kill(instance: Instance): Promise<void>;
  /** Removes the sockets and pid files a process leaves behind, so a stale one is never taken for a live one. */
  clearRuntime(instance: Instance): void;

  /** What the recorded process of a running or paused instance is doing, asked without waiting on a busy monitor. */
  observe(instance: Instance): Promise<Observation>;
  /** The instance's live process, from the record or (a crash came before the record) from its runtime files. */
  find(instance: Instance): ProcessIdentity | undefined;
  /** Whether its guest runs (not paused, not shut down): a process found after a crash is adopted only then. */
  guestRunning(instance: Instance): Promise<boolean>;
  /**
   * Undoes what the instance's storage holds on the host outside its files (a container's loop-mounted layer),
   * so that its directory (`dir`) can be removed; called after its process is gone. Idempotent.
   */
  releaseStorage(dir: string): Promise<void>;
  /**
   * Ends the process of a directory that has no instance record: `pid` (from findOrphans) or the one its runtime
   * files name, and only if that process really is this directory's.
   */
  killOrphan(dir: string, pid?: number): Promise<void>;
  /** Processes of this driver whose instance directory (under `instancesDir`) has no record in `known`. */
  findOrphans(instancesDir: string, known: ReadonlySet<string>): Array<{ pid: number; dir: string }>;

  /** Where the instance's consoles are, while it runs. */
  consoles(instance: Instance): ConsoleEndpoints;
  /** Usage counters of a running instance; a part the instance does not answer for this round is left out. */
  sample(instance: Instance, options: { guestNics: boolean }): Promise<DriverSample>;
  /** What a running instance has now, asked of the program that runs it (for drift: `virtnode diff`). */
  inspect?(instance: Instance): Promise<LiveDevices>;
  /** Gives a running guest this much memory without a restart (at most what it booted with). */
  setLiveMemory?(instance: Instance, memoryMiB: number): Promise<void>;
  /**
   * The argv that runs `command` inside the running instance without SSH (as root, with its exit code), or
   * undefined when the driver has no such door and `exec` goes through SSH.
   */
  execArgv(instance: Instance, command: string[]): string[] | undefined;
  /**
   * Grows the instance's own storage while it is stopped (a container's writable layer) to `sizeBytes`; returns
   * its spec with the new size. Absent: the driver's instances grow their disks as volumes.
   */
  growStorage?(instance: Instance, sizeBytes: number): Promise<Instance['spec']>;
  /** Moves a host link (the container end of a veth pair) into the running instance as `ifname` (nicLink veth). */
  plugLink?(instance: Instance, link: string, ifname: string): Promise<void>;
  /** Before a plugged link is deleted from the running instance: forget what plugLink configured in the guest for it. */
  unplugLink?(instance: Instance, ifname: string): Promise<void>;
}

/** A running instance's resources as its process has them. */
export interface LiveDevices {
  cpus: number;
  /** What it booted with: the most a live memory change can give it. */
  bootMemoryMiB: number;
  /** What the guest has now (after any balloon). */
  memoryMiB: number;
  /** Ids of the disks attached now (DiskSpec ids). */
  disks: string[];
  nicMacs: string[];
}

export type DriverName = 'qemu' | 'lxc';

/** The refusal of a console an instance's driver does not have. */
export function noConsole(name: string, kind: 'serial' | 'graphical'): VirtnodeError {
  return new VirtnodeError('INVALID_STATE', `instance ${name} has no ${kind} console (its output is recorded: virtnode logs ${name})`, {
    hint: `run commands with virtnode exec ${name} -- CMD, or log in with virtnode shell ${name}`,
  });
}

/** The clear refusal of an operation a driver does not offer (the capabilities above say which). */
export function notOffered(instance: { name: string }, driver: { name: string }, what: string): never {
  throw new VirtnodeError('INVALID_STATE', `instance ${instance.name} cannot ${what}: its driver (${driver.name}) does not offer it yet`, {
    hint: 'containers (lxc) offer every lifecycle verb, exec, shell, console, logs, snapshots, clones, templates, port forwards and NIC attach/detach; not volumes, tuning or live memory',
  });
}

export interface DriverCapabilities {
  /**
   * Disk snapshots (storage/snapshots): written for QEMU's block layer (qcow2 internal snapshots and overlays,
   * QMP transactions and block jobs); a driver without them gets a clear error there.
   */
  snapshots: boolean;
  /** Clones and templates: written for disk images (copies, overlays and offline sealing of a disk). */
  clones: boolean;
  /** The host side of a NIC on a managed network: a tap QEMU opens, or a veth pair whose peer LXC moves in. */
  nicLink: 'tap' | 'veth';
  /** Where the instance's own data is: disk images (QEMU), or an overlay's upper directory (LXC). */
  storage: 'disks' | 'upper-dir';
}

export interface PreparedStart {
  /** The reason recorded with the state `running`, e.g. "started with kvm". */
  readonly reason: string;
  /** How the process will run (a VM's QEMU), recorded with the instance before it starts (InstanceSpec `runtime`). */
  readonly runtime?: InstanceRuntime;
  /**
   * Starts the instance. `onProcess` records the new process before the guest runs, so a crash after it never
   * loses a running guest; if anything fails (`onProcess` included), the process is ended before the error returns.
   */
  run(instance: Instance, options: { signal?: AbortSignal; onProcess: (process: ProcessIdentity) => void }): Promise<void>;
}

/** How the guest went down: its own (ACPI) shutdown, or forced. */
export type StopMethod = 'acpi' | 'forced' | 'forced-after-timeout';

export type Observation =
  /** The process ended without the guest shutting down. */
  | { state: 'gone'; reason: string }
  /** The process is busy or going away: keep the recorded state. */
  | { state: 'unknown' }
  | { state: 'running' }
  | { state: 'paused'; reason: string }
  /** The guest ended on its own; its process is still there until `kill`. */
  | { state: 'stopped' | 'crashed'; reason: string };

export interface ConsoleEndpoints {
  /** The serial console's stream socket (one client at a time); undefined: the driver has none (a container). */
  serial: string | undefined;
  /** Without a serial socket: a command whose stdin and stdout are the console (a container's lxc-console). */
  serialCommand?: string[];
  /** Everything the serial console printed, across restarts. */
  serialLog: string;
  /** The graphical console (an RFB server on a UNIX socket); undefined: the driver has none. */
  vnc: string | undefined;
}

export interface NicCounters {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

export interface BlockCounters {
  device: string;
  rdBytes: number;
  wrBytes: number;
  rdOps: number;
  wrOps: number;
}

export interface DriverSample {
  cpuSeconds?: number;
  rssBytes?: number;
  /** QEMU's own private memory beyond the guest's RAM (drivers/qemu/metrics.ts). */
  overheadBytes?: number;
  /** Memory the guest has, as its balloon reports it. */
  balloonBytes?: number;
  block: BlockCounters[];
  /** The guest's own NIC counters by MAC (asked only with `guestNics`); absent when the guest did not answer. */
  guestNics?: Map<string, NicCounters>;
}
