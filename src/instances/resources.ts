/**
 * Changes an instance's vCPUs, memory, accelerator and kernel boot in place (`virtnode apply`): recorded for the
 * next boot, and memory also live through the driver (the balloon) when the guest runs and it fits in what the
 * guest booted with. Under the instance lock, like every other change.
 */
import { invalid, VirtnodeError } from '../lib/errors.ts';
import type { AccelRequest, InstanceSpec, KernelBoot, Tuning } from './model.ts';
import { observeInstance } from './observe.ts';
import type { InstanceService } from './service.ts';

export interface ResourceChange {
  cpus?: number;
  memoryMiB?: number;
  accel?: AccelRequest;
  /** null: no kernel boot any more. */
  boot?: KernelBoot | null;
  /** null: no tuning any more (QEMU's defaults). Checked against the host at the next start. */
  tuning?: Tuning | null;
  /** A container's writable layer grown to this (stopped only; drivers without growStorage refuse). */
  diskSizeBytes?: number;
}

export async function changeResources(service: InstanceService, name: string, change: ResourceChange): Promise<{ liveMemory: boolean }> {
  return service.locked(name, 'resources', {}, async () => {
    const instance = await observeInstance(service.core, service.mustGet(name));
    if (['creating', 'deleting', 'starting', 'stopping'].includes(instance.state)) {
      throw new VirtnodeError('INVALID_STATE', `cannot change ${name}: it is ${instance.state}`, { hint: 'wait for the operation in progress to end' });
    }
    let liveMemory = false;
    const driver = service.driver(instance);
    const running = instance.state === 'running' || instance.state === 'paused';
    if (change.memoryMiB !== undefined && running && driver.inspect !== undefined && driver.setLiveMemory !== undefined) {
      const live = await driver.inspect(instance);
      if (change.memoryMiB <= live.bootMemoryMiB) {
        await driver.setLiveMemory(instance, change.memoryMiB);
        liveMemory = true;
      }
    }
    let spec: InstanceSpec = { ...instance.spec };
    if (change.diskSizeBytes !== undefined) {
      if (driver.growStorage === undefined) throw invalid('disk', `${name} is a VM: its disks are volumes`, 'grow them with virtnode volume resize');
      if (!['defined', 'stopped', 'crashed'].includes(instance.state)) {
        throw new VirtnodeError('INVALID_STATE', `cannot grow the disk of ${name}: it is ${instance.state}`, { field: 'disk', hint: `stop it first: virtnode stop ${name}` });
      }
      spec = await driver.growStorage(instance, change.diskSizeBytes);
    }
    if (change.cpus !== undefined) spec.cpus = change.cpus;
    if (change.memoryMiB !== undefined) spec.memoryMiB = change.memoryMiB;
    if (change.accel !== undefined) spec.accel = change.accel;
    if (change.boot === null) delete spec.boot;
    else if (change.boot !== undefined) spec.boot = change.boot;
    if (change.tuning === null) delete spec.tuning;
    else if (change.tuning !== undefined) spec.tuning = change.tuning;
    service.repo.updateSpec(name, spec);
    return { liveMemory };
  });
}
