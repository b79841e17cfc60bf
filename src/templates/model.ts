import type { Accel, AccelRequest, ContainerSpec, DiskFormat, ImageRef, KernelBoot, Tuning } from '../instances/model.ts';

export type SealMethod = 'guest-agent' | 'offline';

/** What clones and launches of a template start from, taken from the instance it was made of. */
export interface TemplateDefaults {
  cpus: number;
  memoryMiB: number;
  accel: AccelRequest;
  boot?: KernelBoot;
  tuning?: Tuning;
  /** The default user of a launched instance (its SSH login), when the source had one. */
  user?: string;
  /** The networks of its NICs, in order (`user` or a managed network's name); clones get one NIC on each. */
  networks: string[];
  /** A container's template: its disk is a tar of the sealed upper directory, on this lower tree. */
  container?: ContainerSpec;
}

/**
 * The device model a template's memory state was saved from. A warm launch starts exactly this (the same QEMU
 * version, the resolved machine type, accelerator, CPUs, memory, boot and devices), else the state cannot load.
 */
export interface WarmModel {
  qemuVersion: string;
  /** The machine type `q35` resolved to when the state was saved (`pc-q35-7.2`). */
  machine: string;
  accel: Accel;
  cpus: number;
  memoryMiB: number;
  boot?: KernelBoot;
  tuning?: Tuning;
  /**
   * The guest's RAM is a file beside the state (its name in the warm directory), and the state holds only the
   * devices (QEMU's `x-ignore-shared`): a launch maps the file copy-on-write instead of reading the RAM through
   * the migration stream. Absent in warm states saved before (their stream holds the RAM).
   */
  ramFile?: string;
  /**
   * KiB each guest RAM block had beyond `memoryMiB` when the state was saved (qemu/ram-pad.ts: TCG on QEMU < 9.0);
   * every load uses the same, whatever the host would choose now. Absent (states saved before): none.
   */
  memoryPadKiB?: number;
  /**
   * The saved first-boot program sets the guest's clock itself from the job's host time (then no guest-set-time,
   * whose `hwclock -w` costs the guest seconds under TCG). Absent in warm states saved before.
   */
  clockFromJob?: boolean;
  /**
   * The saved first-boot program takes its job from a file and leaves its report in one, both written and read
   * through the guest agent's file commands (nothing is started in the guest for them). Absent in warm states
   * saved before: a shell in the guest relays both through FIFOs.
   */
  jobInFiles?: boolean;
}

/**
 * A template's warm state (`template create --warm`): the sealed template booted once, with no NIC and no seed,
 * to a running guest agent with cloud-init's per-instance work not done, then paused and saved.
 */
export interface WarmState {
  /** The disk as it was when the memory was saved: an overlay on the template's disk, read-only; warm launches' disks sit on it. */
  diskPath: string;
  /** QEMU's migration stream of the paused guest, read-only. */
  statePath: string;
  stateBytes: number;
  model: WarmModel;
  /** How long the boot to the saved point took, for `template info`. */
  bootMs: number;
  createdAt: string;
}

/**
 * A sealed, read-only disk that clones and launches use as their backing file. It is never started and never
 * written again; it is removed only once nothing depends on it.
 */
export interface Template {
  name: string;
  diskPath: string;
  format: DiskFormat;
  virtualSize: number;
  /** Of the disk file when the template was made: the disk must keep it (`template info --verify`). */
  sha256: string;
  /** The instance it was made from. */
  source: string;
  /** The image the disk is an overlay on, when the source was launched from one. */
  image?: ImageRef;
  defaults: TemplateDefaults;
  sealMethod: SealMethod;
  /** What sealing changed, one line each (for `template info`). */
  sealReport: string[];
  /** Present when the template keeps a memory state for warm launches. */
  warm?: WarmState;
  createdAt: string;
}
