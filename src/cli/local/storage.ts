import { instanceDiskView, poolView, volumeCheckView, volumeView, type InstanceDiskApiView, type PoolApiView, type VolumeApiView, type VolumeCheckView } from '../../api/views.ts';
import type { CreateVolumeRequest, DiskChangeView, ImportVolumeRequest, StorageApi, VolumeResizeView } from '../../client/storage.ts';
import type { StorageService } from '../../storage/service.ts';

const pools = () => import('../../storage/pools.ts');
const volumes = () => import('../../storage/volumes.ts');

/** The storage API in this process: the core called directly (no daemon running, or not reachable). */
export class LocalStorage implements StorageApi {
  readonly via = 'local' as const;
  private readonly storage: StorageService;

  constructor(storage: StorageService) {
    this.storage = storage;
  }

  async listPools(): Promise<PoolApiView[]> {
    return (await pools()).listPools(this.storage).map((p) => poolView(p));
  }

  async getPool(name: string): Promise<PoolApiView> {
    return poolView((await pools()).poolInfo(this.storage, name));
  }

  async createPool(name: string, path: string): Promise<PoolApiView> {
    const { createPool, poolInfo } = await pools();
    return poolView(poolInfo(this.storage, createPool(this.storage, name, path).name));
  }

  async removePool(name: string): Promise<void> {
    (await pools()).removePool(this.storage, name);
  }

  async listVolumes(options: { pool?: string }): Promise<VolumeApiView[]> {
    return (await (await volumes()).listVolumes(this.storage, options)).map((v) => volumeView(v));
  }

  async listInstanceDisks(): Promise<InstanceDiskApiView[]> {
    return (await (await volumes()).listInstanceDisks(this.storage)).map(instanceDiskView);
  }

  async getVolume(name: string): Promise<VolumeApiView> {
    return volumeView(await (await volumes()).volumeInfo(this.storage, name));
  }

  async createVolume(request: CreateVolumeRequest): Promise<VolumeApiView> {
    const { createVolume, volumeInfo } = await volumes();
    const v = await createVolume(this.storage, request);
    return volumeView(await volumeInfo(this.storage, v.name));
  }

  async resizeVolume(name: string, size: string, options: { allowShrink?: boolean }): Promise<VolumeResizeView> {
    const r = await (await volumes()).resizeVolume(this.storage, name, size, options);
    return { volume: r.volume.name, from: r.from, to: r.to, live: r.live };
  }

  async convertVolume(name: string, format: string): Promise<VolumeApiView> {
    const { convertVolume, volumeInfo } = await volumes();
    await convertVolume(this.storage, name, format);
    return volumeView(await volumeInfo(this.storage, name));
  }

  async checkVolume(name: string): Promise<VolumeCheckView> {
    return volumeCheckView(await (await volumes()).checkVolume(this.storage, name));
  }

  async importVolume(file: string, request: ImportVolumeRequest): Promise<VolumeApiView> {
    const { importVolume, volumeInfo } = await volumes();
    const v = await importVolume(this.storage, file, request);
    return volumeView(await volumeInfo(this.storage, v.name));
  }

  async exportVolume(name: string, file: string, options: { format?: string }): Promise<{ path: string; format: string }> {
    return (await volumes()).exportVolume(this.storage, name, file, options);
  }

  async removeVolume(name: string): Promise<void> {
    await (await volumes()).removeVolume(this.storage, name);
  }

  async attachDisk(instance: string, volume: string): Promise<DiskChangeView> {
    return (await import('../../storage/disks.ts')).attachDisk(this.storage, instance, volume);
  }

  async detachDisk(instance: string, volume: string): Promise<DiskChangeView> {
    return (await import('../../storage/disks.ts')).detachDisk(this.storage, instance, volume);
  }
}
