/**
 * The steps of a live move between a source host and a target host, as plain JSON-able data, so any transport
 * carries them: in-process today (tests, bench), the cluster's TLS API between daemons later. The source
 * drives: it offers the VM, the target prepares (disks, paused QEMU, listening sockets) and answers where to
 * send memory and disks; once the switch-over begins it tells the target to resume the guest when the memory is in.
 * Until then the target may be aborted at any time, and it must then leave nothing behind.
 */
import type { DiskFormat } from '../model.ts';
import type { QemuSpec } from '../../qemu/spec.ts';

export type PostcopyMode = 'auto' | 'never';

/** A read-only base image that a linked clone's disk is an overlay of; identical bytes on both hosts. */
export interface BaseImage {
  sha256: string;
  format: DiskFormat;
  /** Where the source host has it (the target fetches or copies it from there). */
  sourcePath: string;
}

/** How one disk reaches the target. */
export type DiskTransfer =
  /** The target creates a disk of its own (an overlay of `base` if given) and the source mirrors into it over NBD. */
  | {
      kind: 'copy';
      base?: BaseImage;
      /**
       * Offline moves only: the layers between the disk and `base` (top first; a warm launch's template disk) that
       * the source folds into the one overlay of `base` it sends. Never in a live move's offer.
       */
      fold?: string[];
    }
  /** Both hosts reach the same file (a shared pool, a read-only image): nothing is copied. */
  | { kind: 'shared'; path: string };

export interface OfferedDisk {
  /** The block node name, identical on both sides (the device model refers to it). */
  id: string;
  format: DiskFormat;
  virtualSize: number;
  readonly: boolean;
  bootIndex?: number;
  /** The hot-plug port it sits on in the source's QEMU (absent: the root bus). */
  bus?: string;
  transfer: DiskTransfer;
}

/** The device model of the VM, without what is local to a host (its runtime paths and disk files). */
export type OfferedVm = Omit<QemuSpec, 'paths' | 'disks' | 'incoming' | 'hugepagePath'>;

export interface MigrationOffer {
  /** Unique per attempt; names the target's staging. */
  id: string;
  /** The source's QEMU version: the target must run the same machine type, so the same QEMU release. */
  qemuVersion: { major: number; minor: number; micro: number };
  /** The named CPU model the guest runs with; must be the VM's own (`tuning.cpuModel`) and offered by the target. */
  cpuModel: string;
  vm: OfferedVm;
  disks: OfferedDisk[];
  /** Post-copy may be used (the capability must be set on both sides before the migration starts). */
  postcopy: boolean;
}

export interface TargetReady {
  /** Where the source sends the memory (`tcp:HOST:PORT`). */
  migrationUri: string;
  /** The NBD server exporting the new disks, when any disk is copied; export names by disk id. */
  nbd?: { host: string; port: number; exports: Record<string, string> };
}

export interface TargetResumed {
  pid: number;
  /** When the target was asked to resume (ms since the epoch, the target's clock). */
  askedAt?: number;
  /** When the target saw the last of the memory loaded, just before its `cont` (same clock). */
  arrivedAt?: number;
  /**
   * When the guest's vCPUs ran again on the target (ms since the epoch, the target's clock). Absent when the target
   * no longer knows (its daemon restarted after it adopted the guest): the move's downtime is then unknown.
   */
  resumedAt?: number;
}

/** What the source needs from the target host; the cluster implements it over its host-to-host API. */
export interface TargetHost {
  prepare(offer: MigrationOffer, options?: { signal?: AbortSignal }): Promise<TargetReady>;
  /**
   * The switch-over began (the source's vCPUs stopped for the last pages and the devices' state, or post-copy
   * began): run the guest on the target as soon as its memory has arrived, and answer then. Asked while the last
   * of the stream is still on the way, so the request's own trip is not in the guest's downtime. `abort` before
   * the guest runs wins; after, it is refused.
   */
  resume(options?: { signal?: AbortSignal }): Promise<TargetResumed>;
  /**
   * Post-copy only: the link dropped while the guest already ran on the target (`postcopy-paused`); listen
   * again (`migrate-recover`) and return where the source resumes the migration.
   */
  recover?(options?: { signal?: AbortSignal }): Promise<string>;
  /** Stops whatever prepare made and removes it. Safe at any point, more than once. */
  abort(reason: string): Promise<void>;
}

/** One progress report of a move. */
export interface MigrationProgress {
  /** `recovering`: the link dropped during post-copy; both sides are paused until the target listens again. */
  phase: 'measuring' | 'preparing' | 'mirroring' | 'migrating' | 'postcopy' | 'recovering' | 'switching' | 'completed';
  /** Bytes of memory sent so far. */
  bytesSent: number;
  /** Bytes of memory still to send (QEMU's estimate). */
  bytesRemaining: number;
  /** Pages dirtied per second, as QEMU last measured during the migration. */
  dirtyPagesPerSecond: number;
  /**
   * The expected time until the end, ms: in pre-copy from QEMU's figures at this poll (src/instances/migrate/predict.ts
   * `estimateRemaining`), in post-copy the rest at QEMU's measured rate; `undefined` while there is nothing to go by
   * or while pre-copy does not converge.
   */
  expectedRemainingMs: number | undefined;
  /** `false`: the guest dirties memory as fast as it is sent (auto-converge throttles it, or post-copy takes over). */
  converging: boolean | undefined;
  /** Disk mirror: bytes copied and total. */
  diskBytesDone: number;
  diskBytesTotal: number;
  elapsedMs: number;
}

/** Where a live move's downtime went, ms from the source's STOP. */
export interface SwitchoverTimes {
  /** With copied disks: the source paused before the switch-over (QEMU's MIGRATION `pre-switchover`). */
  pausedMs?: number;
  /** With copied disks: the disk mirrors finished and `migrate-continue` answered. */
  continuedMs?: number;
  /** The source's QEMU had sent the rest (its MIGRATION `completed`). */
  sourceCompletedMs?: number;
  /** The target was asked to resume the guest. */
  resumeAskedMs?: number;
  /** The target had the memory loaded. */
  arrivedMs?: number;
  /** The guest ran on the target (the downtime). */
  runningMs: number;
}

export interface MigrationResult {
  /** The dirty rate measured at the start of the move (calc-dirty-rate, 1 s), MiB/s; absent when the move was over sooner. */
  dirtyRateMiBps?: number;
  /** The move's expected duration from the dirty rate, the memory size and the bandwidth (the cap), ms. */
  predictedMs?: number;
  /**
   * The same from the rate the migration really went through memory in its first second (the whole expected
   * duration from the start of `migrate`, ms); absent when the migration was over sooner.
   */
  refinedPredictedMs?: number;
  /** From the start of the memory migration to the guest running on the target. */
  migrationMs: number;
  /** From the first step (dirty rate) to the guest running on the target. */
  totalMs: number;
  /** QEMU's own downtime figure (source stop to completion). */
  qemuDowntimeMs: number | undefined;
  /** From the source's vCPUs stopping (its STOP event) to the target running them (its resume). */
  downtimeMs: number | undefined;
  /**
   * Where the downtime went, ms from the source's STOP (same machine's clock on a host pair in one machine, else
   * as far as the hosts' clocks agree): the source's MIGRATION `completed` (QEMU sent the rest), the target asked
   * to resume, the memory loaded there, the guest running there.
   */
  switchover?: SwitchoverTimes;
  bytesSent: number;
  postcopy: boolean;
  diskBytes: number;
  targetPid: number;
}
