/**
 * The two sides the planner compares: what the stack files ask for (normalized: units parsed, defaults filled
 * in, so `memory: 0.5G` and an omitted memory are both 512 MiB) and what exists. Plain data, no services.
 */
import type { AccelRequest, DiskFormat, KernelBoot, PortForwardSpec, Tuning } from '../../instances/model.ts';
import type { Network } from '../../network/model.ts';
import type { LocatedDoc } from './locate.ts';

export interface DesiredNetwork {
  kind: 'network';
  name: string;
  /** What `network create` gets. */
  request: { name: string; mode?: 'nat' | 'isolated' | 'bridge'; subnet?: string; dhcpRange?: string; domain?: string; bridge?: string };
  /** What it would make (the validator's answer): compared field by field with an existing network. */
  valid: Omit<Network, 'id' | 'bridge' | 'createdAt'> & { bridge?: string };
}

export interface DesiredImage {
  kind: 'image';
  name: string;
  source: { url: string; sha256?: string; checksumsUrl?: string } | { file: string };
  sha256?: string;
}

export interface DesiredTemplate {
  kind: 'template';
  name: string;
  instance: string;
}

export interface DesiredPool {
  kind: 'pool';
  name: string;
  path: string;
}

export interface DesiredVolume {
  kind: 'volume';
  name: string;
  size: string;
  sizeBytes: number;
  format: DiskFormat;
  pool: string;
  preallocate: boolean;
}

export interface DesiredNic {
  network: string;
  ip?: string;
}

export interface DesiredInstance {
  kind: 'instance';
  name: string;
  state: 'running' | 'stopped';
  image?: string;
  boot?: KernelBoot;
  diskSize?: string;
  cpus: number;
  memoryMiB: number;
  accel: AccelRequest;
  nics: DesiredNic[];
  volumes: string[];
  ports: PortForwardSpec[];
  userData?: string;
  userDataSha256?: string;
  sshAuthorizedKeys?: string[];
  tuning?: Tuning;
}

export type Desired = DesiredImage | DesiredNetwork | DesiredPool | DesiredVolume | DesiredInstance | DesiredTemplate;
export type DesiredKind = Desired['kind'];

/** A desired object with the document it came from (for messages). */
export type Located<T extends Desired = Desired> = T & { doc: LocatedDoc };

export interface CurrentInstance {
  name: string;
  state: string;
  cpus: number;
  memoryMiB: number;
  accel: AccelRequest;
  image?: string;
  boot?: KernelBoot;
  nics: Array<{ index: number; mac: string; network: string; address?: string; staticAddress?: boolean }>;
  /** Volumes attached as disks. */
  volumes: string[];
  ports: PortForwardSpec[];
  /** Has run at least once (its cloud-init has run the user-data it had). */
  booted: boolean;
  /** Running: the memory it booted with (a live change can give it at most this). */
  bootMemoryMiB?: number;
  tuning?: Tuning;
}

export interface CurrentVolume {
  name: string;
  pool: string;
  format: DiskFormat;
  virtualSize?: number;
  attachedTo?: string;
}

export interface Owner {
  stack: string;
  created: boolean;
  userDataSha256?: string;
}

export interface CurrentState {
  /** Images by name: their digest. */
  images: Map<string, { sha256: string }>;
  templates: Set<string>;
  networks: Map<string, Network>;
  pools: Map<string, { name: string; path: string }>;
  volumes: Map<string, CurrentVolume>;
  instances: Map<string, CurrentInstance>;
  /** By `kind/name`. */
  owners: Map<string, Owner>;
}

export const ownerKey = (kind: string, name: string): string => `${kind}/${name}`;
