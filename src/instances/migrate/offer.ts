import { randomUUID } from 'node:crypto';
import { VirtnodeError } from '../../lib/errors.ts';
import { imageInfo } from '../../qemu/img.ts';
import type { QemuSpec } from '../../qemu/spec.ts';
import type { DiskTransfer, MigrationOffer } from './protocol.ts';

/**
 * The offer of a running VM to a target: its device model as started (`spec`), each disk's size, and how each
 * disk travels (`transfers`, by disk id; the caller knows which pool is shared and which base a disk sits on).
 */
export async function buildOffer(
  spec: QemuSpec,
  options: { qemuVersion: MigrationOffer['qemuVersion']; transfers: Record<string, DiskTransfer>; postcopy: boolean; signal?: AbortSignal },
): Promise<MigrationOffer> {
  const cpuModel = spec.tuning?.cpuModel;
  if (cpuModel === undefined) {
    throw new VirtnodeError('INVALID', "cpuModel: the instance runs with QEMU's default CPU (host or max), which differs from host to host", {
      field: 'cpuModel',
      hint: 'start it with a named baseline CPU model (--cpu-model) to move it live',
    });
  }
  const disks: MigrationOffer['disks'] = [];
  for (const disk of spec.disks) {
    const transfer = options.transfers[disk.id];
    if (transfer === undefined) throw new VirtnodeError('INVALID', `disks: no transfer given for disk ${disk.id}`, { field: 'disks' });
    const info = await imageInfo(disk.path, { format: disk.format, ...(options.signal === undefined ? {} : { signal: options.signal }) });
    disks.push({
      id: disk.id,
      format: disk.format,
      virtualSize: info.virtualSize,
      readonly: disk.readonly,
      ...(disk.bootIndex === undefined ? {} : { bootIndex: disk.bootIndex }),
      ...(disk.bus === undefined ? {} : { bus: disk.bus }),
      transfer,
    });
  }
  const { paths: _paths, disks: _disks, incoming: _incoming, hugepagePath: _hugepages, ...vm } = spec;
  return { id: randomUUID(), qemuVersion: options.qemuVersion, cpuModel, vm, disks, postcopy: options.postcopy };
}
