import type { QemuSpec } from '../qemu/spec.ts';
import type { Accel, Instance } from './model.ts';
import { runtimePaths } from './runtime.ts';

/** Resolves a stored instance into the QEMU spec for this start (accelerator already chosen). */
export function toQemuSpec(instance: Instance, dir: string, accel: Accel): QemuSpec {
  const spec: QemuSpec = {
    name: instance.name,
    uuid: instance.uuid,
    smbiosUuid: instance.smbiosUuid,
    accel,
    cpus: instance.spec.cpus,
    memoryMiB: instance.spec.memoryMiB,
    disks: instance.spec.disks.map((d, i) => ({
      id: d.id,
      path: d.path,
      format: d.format,
      readonly: d.readonly ?? false,
      ...(i === 0 && instance.spec.boot === undefined ? { bootIndex: 1 } : {}),
    })),
    nics: instance.nics.filter((n) => n.network === 'user').map((n) => ({ id: `net${n.index}`, mac: n.mac, backend: { kind: 'user' } })),
    paths: runtimePaths(dir),
  };
  const boot = instance.spec.boot;
  if (boot !== undefined) {
    spec.kernel = { path: boot.kernel };
    if (boot.initrd !== undefined) spec.kernel.initrd = boot.initrd;
    if (boot.cmdline !== undefined) spec.kernel.cmdline = boot.cmdline;
  }
  return spec;
}
