import type { AccelRequest, ContainerSpec, DiskFormat, ImageRef, KernelBoot, Tuning } from '../instances/model.ts';

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
  createdAt: string;
}
