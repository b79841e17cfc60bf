import { METADATA_RESPONDER } from '../lib/install-paths.ts';
import { tapName } from '../network/names.ts';
import type { GuestForward, PortForward, QemuNic, QemuSpec } from '../qemu/spec.ts';
import { type Accel, type Instance, type Nic, USER_NETWORK } from './model.ts';
import { runtimePaths } from './runtime.ts';
import { bootCmdlineFor } from './tcg-boot.ts';

/** Where the guest finds its metadata when the seed is served over HTTP (inside its user-mode network). */
export const METADATA_ADDRESS = '10.0.2.100';

function userNetworkExtras(instance: Instance): { forwards?: PortForward[]; guestForwards?: GuestForward[] } {
  const extras: { forwards?: PortForward[]; guestForwards?: GuestForward[] } = {};
  const ssh = instance.spec.ssh;
  const forwards: PortForward[] = [];
  if (ssh?.hostPort !== undefined) forwards.push({ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: ssh.hostPort, guestPort: ssh.guestPort });
  for (const f of instance.spec.portForwards ?? []) forwards.push({ ...f });
  if (forwards.length > 0) extras.forwards = forwards;
  if (instance.spec.httpSeedDir !== undefined) {
    extras.guestForwards = [{ address: METADATA_ADDRESS, port: 80, command: [process.execPath, METADATA_RESPONDER, instance.spec.httpSeedDir] }];
  }
  return extras;
}

/** The first user-mode NIC carries the SSH forward, the port forwards and the HTTP seed. */
export function toQemuNic(instance: Instance, nic: Nic, options: { restrictUserNetwork?: boolean } = {}): QemuNic {
  const id = `net${nic.index}`;
  if (nic.network !== USER_NETWORK) {
    const queues = instance.spec.tuning?.netQueues;
    return { id, mac: nic.mac, backend: { kind: 'tap', ifname: tapName(instance.uuid, nic.index), ...(queues === undefined ? {} : { queues }) } };
  }
  const first = instance.nics.find((n) => n.network === USER_NETWORK);
  const restrict = options.restrictUserNetwork === true ? { restrict: true } : {};
  return { id, mac: nic.mac, backend: { kind: 'user', ...restrict, ...(first?.index === nic.index ? userNetworkExtras(instance) : {}) } };
}

/** Resolves a stored instance into the QEMU spec for this start (accelerator already chosen). */
export function toQemuSpec(instance: Instance, dir: string, accel: Accel, options: { restrictUserNetwork?: boolean; hugepagePath?: string } = {}): QemuSpec {
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
    nics: instance.nics.map((n) => toQemuNic(instance, n, options)),
    paths: runtimePaths(dir),
  };
  if (instance.spec.tuning !== undefined) spec.tuning = instance.spec.tuning;
  // The running guest's layout (recorded at its start, carried by a live move): never decided again here.
  const pad = instance.spec.runtime?.memoryPadKiB;
  if (pad !== undefined && pad > 0) spec.memoryPadKiB = pad;
  if (options.hugepagePath !== undefined) spec.hugepagePath = options.hugepagePath;
  if (instance.spec.httpSeedDir !== undefined) spec.smbiosSerial = `ds=nocloud-net;s=http://${METADATA_ADDRESS}/`;
  const boot = instance.spec.boot;
  if (boot !== undefined) {
    spec.kernel = { path: boot.kernel };
    if (boot.initrd !== undefined) spec.kernel.initrd = boot.initrd;
    if (boot.cmdline !== undefined) spec.kernel.cmdline = bootCmdlineFor(boot.cmdline, accel);
  }
  return spec;
}
