import {
  orderedInstanceDiskView,
  orderedPoolView,
  orderedVolumeView,
  type InstanceDiskApiView,
  type PoolApiView,
  type VolumeApiView,
  type VolumeCheckView,
} from '../api/views.ts';
import type { ApiClient } from './http.ts';
import { followOperation, type PhaseListener } from './operations.ts';

export interface CreateVolumeRequest {
  name: string;
  size: string;
  format?: string;
  preallocate?: boolean;
  pool?: string;
}

export interface ImportVolumeRequest {
  name?: string;
  pool?: string;
  format?: string;
}

export interface VolumeResizeView {
  volume: string;
  from: number;
  to: number;
  live: boolean;
}

export interface DiskChangeView {
  instance: string;
  volume: string;
  diskId: string;
  live: boolean;
}

/**
 * Pools, volumes and disks, whether the core runs in this process or behind the daemon (the CLI formats the same
 * views either way). Paths (pool directories, files to import or export to) are absolute paths on the host that
 * does the work: the daemon's, when it is used.
 */
export interface StorageApi {
  readonly via: 'local' | 'daemon';
  listPools(): Promise<PoolApiView[]>;
  getPool(name: string): Promise<PoolApiView>;
  createPool(name: string, path: string): Promise<PoolApiView>;
  removePool(name: string): Promise<void>;
  listVolumes(options: { pool?: string }): Promise<VolumeApiView[]>;
  listInstanceDisks(): Promise<InstanceDiskApiView[]>;
  getVolume(name: string): Promise<VolumeApiView>;
  createVolume(request: CreateVolumeRequest): Promise<VolumeApiView>;
  resizeVolume(name: string, size: string, options: { allowShrink?: boolean }): Promise<VolumeResizeView>;
  convertVolume(name: string, format: string, onPhase?: PhaseListener): Promise<VolumeApiView>;
  checkVolume(name: string): Promise<VolumeCheckView>;
  importVolume(file: string, request: ImportVolumeRequest, onPhase?: PhaseListener): Promise<VolumeApiView>;
  exportVolume(name: string, file: string, options: { format?: string }, onPhase?: PhaseListener): Promise<{ path: string; format: string }>;
  removeVolume(name: string): Promise<void>;
  attachDisk(instance: string, volume: string): Promise<DiskChangeView>;
  detachDisk(instance: string, volume: string): Promise<DiskChangeView>;
}

const enc = encodeURIComponent;

/** The storage API over HTTP (UNIX socket or HTTPS). */
export class RemoteStorage implements StorageApi {
  readonly via = 'daemon' as const;
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  private async get<T>(path: string): Promise<T> {
    return (await this.client.request<T>('GET', path)).body;
  }

  async listPools(): Promise<PoolApiView[]> {
    return (await this.get<PoolApiView[]>('/pools')).map(orderedPoolView);
  }

  async getPool(name: string): Promise<PoolApiView> {
    return orderedPoolView(await this.get(`/pools/${enc(name)}`));
  }

  async createPool(name: string, path: string): Promise<PoolApiView> {
    return orderedPoolView((await this.client.request<PoolApiView>('POST', '/pools', { name, path })).body);
  }

  async removePool(name: string): Promise<void> {
    await this.client.request('DELETE', `/pools/${enc(name)}`);
  }

  async listVolumes(options: { pool?: string }): Promise<VolumeApiView[]> {
    return (await this.get<VolumeApiView[]>(options.pool === undefined ? '/volumes' : `/volumes?pool=${enc(options.pool)}`)).map(orderedVolumeView);
  }

  async listInstanceDisks(): Promise<InstanceDiskApiView[]> {
    return (await this.get<InstanceDiskApiView[]>('/instance-disks')).map(orderedInstanceDiskView);
  }

  async getVolume(name: string): Promise<VolumeApiView> {
    return orderedVolumeView(await this.get(`/volumes/${enc(name)}`));
  }

  async createVolume(request: CreateVolumeRequest): Promise<VolumeApiView> {
    return orderedVolumeView((await this.client.request<VolumeApiView>('POST', '/volumes', request)).body);
  }

  async resizeVolume(name: string, size: string, options: { allowShrink?: boolean }): Promise<VolumeResizeView> {
    return (await this.client.request<VolumeResizeView>('POST', `/volumes/${enc(name)}/resize`, { size, ...(options.allowShrink ? { allowShrink: true } : {}) })).body;
  }

  async convertVolume(name: string, format: string, onPhase?: PhaseListener): Promise<VolumeApiView> {
    return orderedVolumeView((await followOperation(this.client, 'POST', `/volumes/${enc(name)}/convert`, { format }, onPhase)) as VolumeApiView);
  }

  async checkVolume(name: string): Promise<VolumeCheckView> {
    return this.get(`/volumes/${enc(name)}/check`);
  }

  async importVolume(file: string, request: ImportVolumeRequest, onPhase?: PhaseListener): Promise<VolumeApiView> {
    return orderedVolumeView((await followOperation(this.client, 'POST', '/volumes/import', { file, ...request }, onPhase)) as VolumeApiView);
  }

  async exportVolume(name: string, file: string, options: { format?: string }, onPhase?: PhaseListener): Promise<{ path: string; format: string }> {
    return (await followOperation(this.client, 'POST', `/volumes/${enc(name)}/export`, { file, ...options }, onPhase)) as { path: string; format: string };
  }

  async removeVolume(name: string): Promise<void> {
    await this.client.request('DELETE', `/volumes/${enc(name)}`);
  }

  async attachDisk(instance: string, volume: string): Promise<DiskChangeView> {
    return (await this.client.request<DiskChangeView>('POST', `/instances/${enc(instance)}/disks`, { volume })).body;
  }

  async detachDisk(instance: string, volume: string): Promise<DiskChangeView> {
    return (await this.client.request<DiskChangeView>('DELETE', `/instances/${enc(instance)}/disks/${enc(volume)}`)).body;
  }
}
