import type { PortForward, QemuSpec } from '../qemu/spec.ts';
import type { Accel, Instance } from './model.ts';
import { runtimePaths } from './runtime.ts';

function sshForward(instance: Instance): { forwards?: PortForward[] } {
  const ssh = instance.spec.ssh;
  if (ssh?.hostPort === undefined) return {};
  return { forwards: [{ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: ssh.hostPort, guestPort: ssh.guestPort }] };
}

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
    nics: instance.nics
      .filter((n) => n.network === 'user')
      .map((n) => ({ id: `net${n.index}`, mac: n.mac, backend: { kind: 'user' as const, ...(n.index === 0 ? sshForward(instance) : {}) } })),
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
