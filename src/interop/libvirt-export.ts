/**
 * An instance as a libvirt domain XML (`virtnode export NAME --format libvirt`): the same name, UUID, memory,
 * CPUs, disks, MACs and networks, and virtnode's fixed hardware said in libvirt's words (q35, virtio disks and
 * NICs, a serial console, the guest agent channel, VGA over VNC, balloon, RNG). What libvirt's XML cannot carry
 * is returned as warnings. Pure.
 */
import type { Instance } from '../instances/model.ts';
import { USER_NETWORK } from '../instances/model.ts';
import type { NetworkMode } from '../network/model.ts';
import { tuningXml } from './libvirt-tuning.ts';
import { writeXml, type XmlNode } from './xml.ts';

export interface ExportNetwork {
  mode: NetworkMode;
  bridge: string;
}

export interface ExportedDomain {
  xml: string;
  warnings: string[];
}

const GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0';

function diskTarget(index: number): string {
  let n = index;
  let suffix = '';
  do {
    suffix = String.fromCharCode(97 + (n % 26)) + suffix;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return `vd${suffix}`;
}

export function exportLibvirtDomain(instance: Instance, network: (name: string) => ExportNetwork | undefined): ExportedDomain {
  const { spec } = instance;
  const warnings: string[] = [];
  const kvm = spec.accel !== 'tcg';
  const tune = tuningXml(spec.tuning, { cpus: spec.cpus, memoryMiB: spec.memoryMiB, disks: spec.disks.length });
  const disks: XmlNode[] = spec.disks.map((d, i) => ({
    name: 'disk',
    attrs: { type: 'file', device: 'disk' },
    children: [
      { name: 'driver', attrs: { name: 'qemu', type: d.format, cache: 'writeback', ...tune.diskDriver(i) } },
      { name: 'source', attrs: { file: d.path } },
      { name: 'target', attrs: { dev: diskTarget(i), bus: 'virtio' } },
      d.readonly === true ? { name: 'readonly' } : undefined,
    ],
  }));
  const nics: XmlNode[] = instance.nics.map((nic) => {
    const common: XmlNode[] = [{ name: 'mac', attrs: { address: nic.mac } }, { name: 'model', attrs: { type: 'virtio' } }];
    if (nic.network === USER_NETWORK) return { name: 'interface', attrs: { type: 'user' }, children: common };
    const net = network(nic.network);
    if (tune.nicDriver !== undefined) common.push(tune.nicDriver);
    if (net?.mode === 'bridge') return { name: 'interface', attrs: { type: 'bridge' }, children: [{ name: 'source', attrs: { bridge: net.bridge } }, ...common] };
    warnings.push(`NIC ${nic.index} (${nic.mac}) is on virtnode network ${nic.network}: libvirt needs a network of that name${net === undefined ? '' : ` (virtnode's uses bridge ${net.bridge})`}`);
    return { name: 'interface', attrs: { type: 'network' }, children: [{ name: 'source', attrs: { network: nic.network } }, ...common] };
  });
  if ((spec.portForwards ?? []).length > 0) warnings.push(`${spec.portForwards!.length} port forward(s) are not carried (libvirt forwards ports only with the passt backend)`);
  if (spec.ssh !== undefined) warnings.push(`the forwarded SSH port (guest port ${spec.ssh.guestPort}) is not carried; reach the guest on its network`);
  if (spec.httpSeedDir !== undefined) warnings.push("the NoCloud seed served over HTTP is not carried (the guest's first boot is done)");
  warnings.push(`the SMBIOS UUID ${instance.smbiosUuid} is not carried: libvirt gives the guest the domain UUID`);

  const os: XmlNode = {
    name: 'os',
    children: [
      { name: 'type', attrs: { arch: 'x86_64', machine: 'q35' }, text: 'hvm' },
      ...(spec.boot === undefined
        ? [{ name: 'boot', attrs: { dev: 'hd' } }]
        : [
            { name: 'kernel', text: spec.boot.kernel },
            spec.boot.initrd === undefined ? undefined : { name: 'initrd', text: spec.boot.initrd },
            spec.boot.cmdline === undefined ? undefined : { name: 'cmdline', text: spec.boot.cmdline },
          ]),
    ],
  };
  const domain: XmlNode = {
    name: 'domain',
    attrs: { type: kvm ? 'kvm' : 'qemu' },
    children: [
      { name: 'name', text: instance.name },
      { name: 'uuid', text: instance.uuid },
      { name: 'description', text: `exported by virtnode${spec.image === undefined ? '' : ` (image ${spec.image.name}, sha256 ${spec.image.sha256})`}` },
      { name: 'memory', attrs: { unit: 'MiB' }, text: String(spec.memoryMiB) },
      { name: 'currentMemory', attrs: { unit: 'MiB' }, text: String(spec.memoryMiB) },
      tune.domain.memoryBacking,
      { name: 'vcpu', attrs: { placement: 'static' }, text: String(spec.cpus) },
      tune.domain.iothreads,
      tune.domain.cputune,
      os,
      { name: 'features', children: [{ name: 'acpi' }, { name: 'apic' }] },
      { name: 'cpu', attrs: { mode: tune.cpu.mode ?? (kvm ? 'host-passthrough' : 'maximum') }, children: tune.cpu.children },
      { name: 'clock', attrs: { offset: 'utc' } },
      { name: 'on_poweroff', text: 'destroy' },
      { name: 'on_reboot', text: 'restart' },
      { name: 'on_crash', text: 'destroy' },
      {
        name: 'devices',
        children: [
          ...disks,
          ...nics,
          { name: 'serial', attrs: { type: 'pty' }, children: [{ name: 'target', attrs: { port: 0 } }] },
          { name: 'console', attrs: { type: 'pty' }, children: [{ name: 'target', attrs: { type: 'serial', port: 0 } }] },
          { name: 'channel', attrs: { type: 'unix' }, children: [{ name: 'target', attrs: { type: 'virtio', name: GUEST_AGENT_CHANNEL } }] },
          { name: 'graphics', attrs: { type: 'vnc', autoport: 'yes' } },
          { name: 'video', children: [{ name: 'model', attrs: { type: 'vga' } }] },
          { name: 'memballoon', attrs: { model: 'virtio', ...tune.balloon } },
          { name: 'rng', attrs: { model: 'virtio' }, children: [{ name: 'backend', attrs: { model: 'random' }, text: '/dev/urandom' }] },
        ],
      },
    ],
  };
  return { xml: writeXml(domain), warnings };
}
