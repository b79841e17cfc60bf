import type { DiskSpec, Instance, InstanceState } from '../instances/model.ts';
import { driverFor } from '../instances/drivers/index.ts';
import { isVirtnodeError, VirtnodeError } from '../lib/errors.ts';
import { delaypoint } from '../lib/failpoint.ts';
import { validateName } from '../lib/names.ts';
import { blockdevDel, deviceAdd } from '../qmp/commands.ts';
import { addBlockNode, deviceId, freeHotplugPort, removeDevice } from './qmp-block.ts';
import { isLive, type StorageService } from './service.ts';
import { mustGetVolume } from './volumes.ts';

const OFFLINE: InstanceState[] = ['defined', 'stopped', 'crashed'];

function nextDiskId(disks: DiskSpec[]): string {
  const taken = new Set(disks.map((d) => d.id));
  for (let i = 1; ; i++) if (!taken.has(`disk${i}`)) return `disk${i}`;
}

function assertAttachable(storage: StorageService, instance: Instance): void {
  if (driverFor(storage.paths, instance).capabilities.storage === 'upper-dir') {
    throw new VirtnodeError('INVALID_STATE', `cannot attach or detach volumes on ${instance.name}: it is a container, which has no block devices (its files are an overlay on its image)`, {
      hint: 'containers offer NIC attach/detach (live too), snapshots, clones and templates; volumes are for VMs',
    });
  }
  if (!OFFLINE.includes(instance.state) && !isLive(instance)) {
    throw new VirtnodeError('INVALID_STATE', `cannot change the disks of ${instance.name}: it is ${instance.state}`, { hint: 'wait for the operation in progress to end' });
  }
}

export interface DiskChange {
  instance: string;
  volume: string;
  diskId: string;
  live: boolean;
}

/**
 * Attaches a volume as a virtio disk. Stopped: recorded in the spec, present at next start. Running: hot-plugged
 * onto a free PCIe root port (blockdev-add, device_add), then recorded, so it stays after a restart.
 */
export async function attachDisk(storage: StorageService, instanceName: string, volumeName: string): Promise<DiskChange> {
  validateName('instance', instanceName);
  mustGetVolume(storage, volumeName);
  // The volume's lock too (taken after the instance's, as resize does): two attaches of one volume to two
  // instances, or an attach against a delete or convert, run one after the other and the second sees the first.
  return storage.instances.withLock(instanceName, 'disk attach', {}, () =>
    storage.withVolumeLock(volumeName, 'attach', {}, async () => {
      const volume = mustGetVolume(storage, volumeName);
      const instance = await storage.instance(instanceName);
      assertAttachable(storage, instance);
      const user = storage.attachedTo(volume.name);
      if (user !== undefined) {
        throw new VirtnodeError('CONFLICT', `volume ${volume.name} is already attached to instance ${user.name}`, {
          hint: user.name === instance.name ? 'nothing to do' : `two VMs writing one disk corrupt it; detach it there first: virtnode disk detach ${user.name} ${volume.name}`,
        });
      }
      await delaypoint('attach.after-check');
      const memorySnapshots = storage.repo.snapshots(instance.name).filter((s) => s.memory);
      if (memorySnapshots.length > 0 && volume.format === 'raw') {
        throw new VirtnodeError('INVALID_STATE', `cannot attach raw volume ${volume.name}: ${instance.name} has snapshots with memory state (${memorySnapshots.map((s) => s.name).join(', ')})`, {
          hint: 'reverting one would restore the guest\'s memory but not this disk; convert the volume to qcow2 (virtnode volume convert --format qcow2) or delete those snapshots',
        });
      }
      const disk: DiskSpec = { id: nextDiskId(instance.spec.disks), path: volume.path, format: volume.format, owned: false, volume: volume.name };
      const live = isLive(instance);
      if (live) {
        await storage.withQmp(instance, async (qmp) => {
          const port = await freeHotplugPort(qmp);
          if (port === undefined) {
            throw new VirtnodeError('CONFLICT', `instance ${instance.name} has no free hotplug port left`, { hint: `stop it and attach offline: virtnode stop ${instance.name}` });
          }
          await addBlockNode(qmp, disk.id, disk.path, disk.format);
          try {
            await deviceAdd(qmp, { driver: 'virtio-blk-pci', id: deviceId(disk.id), drive: disk.id, bus: port, addr: '0' });
          } catch (e) {
            await blockdevDel(qmp, { 'node-name': disk.id }).catch(() => {});
            throw e;
          }
        });
      }
      storage.instances.repo.updateSpec(instance.name, { ...instance.spec, disks: [...instance.spec.disks, disk] });
      return { instance: instance.name, volume: volume.name, diskId: disk.id, live };
    }),
  );
}

/**
 * Detaches a volume. Running: device_del, wait until the guest has released the device (DEVICE_DELETED), then
 * close the drive (blockdev-del); stopped: only the spec changes.
 */
export async function detachDisk(storage: StorageService, instanceName: string, volumeName: string): Promise<DiskChange> {
  validateName('instance', instanceName);
  validateName('volume', volumeName);
  return storage.instances.withLock(instanceName, 'disk detach', {}, async () => {
    const instance = await storage.instance(instanceName);
    assertAttachable(storage, instance);
    const disk = instance.spec.disks.find((d) => d.volume === volumeName);
    if (disk === undefined) {
      throw new VirtnodeError('NOT_FOUND', `volume ${volumeName} is not attached to instance ${instance.name}`, { hint: `see its disks: virtnode info ${instance.name}` });
    }
    const volume = mustGetVolume(storage, volumeName);
    const holders = storage.repo.snapshots(instance.name).filter((s) => s.disks.some((d) => d.id === disk.id));
    if (holders.length > 0 || disk.path !== volume.path) {
      throw new VirtnodeError('INVALID_STATE', `cannot detach volume ${volumeName}: snapshots of ${instance.name} include it (${holders.map((s) => s.name).join(', ')})`, {
        hint: `delete them first (virtnode snapshot rm ${instance.name} SNAP); external ones merge their overlays back into the volume`,
      });
    }
    const live = isLive(instance);
    if (live) {
      await storage.withQmp(instance, async (qmp) => {
        await removeDevice(qmp, deviceId(disk.id));
        await blockdevDel(qmp, { 'node-name': disk.id });
        // Attached at start (-blockdev), the file node is a node of its own.
        await blockdevDel(qmp, { 'node-name': `${disk.id}-file` }).catch((e: unknown) => {
          if (!isVirtnodeError(e, 'QMP_COMMAND')) throw e;
        });
      });
    }
    storage.instances.repo.updateSpec(instance.name, { ...instance.spec, disks: instance.spec.disks.filter((d) => d.id !== disk.id) });
    return { instance: instance.name, volume: volumeName, diskId: disk.id, live };
  });
}
