/**
 * Reads a libvirt domain XML into what virtnode can keep of it. Every element and attribute is either mapped
 * (or is what virtnode does anyway: ACPI, a VGA display over VNC, the serial console, the guest agent channel,
 * the balloon, the RNG) or reported as a warning with its XPath-like location; nothing is dropped silently.
 * Pure: the caller checks the disk files and the networks (src/app/libvirt.ts).
 */
import { invalid } from '../lib/errors.ts';
import type { DiskFormat, KernelBoot, Tuning } from '../instances/model.ts';
import { mergeDeviceTuning, readBalloonTuning, readCpuTuning, readCputune, readDiskDriverTuning, readMemoryBacking, readNicDriverTuning } from './libvirt-tuning.ts';
import { parseXml, type XmlElement } from './xml.ts';
import { type ImportWarning, Tracker } from './xml-tracker.ts';

export interface ImportedDisk {
  /** Where it was in the XML, e.g. `/domain/devices/disk[2]`. */
  location: string;
  path: string;
  /** The driver's `type`; absent when the XML does not say (the caller probes the file). */
  format?: DiskFormat;
  bus: string;
  cache?: string;
  device: 'disk' | 'cdrom';
  readonly: boolean;
  /** Its driver's performance settings; the instance keeps those all its disks share. */
  tuning: Tuning;
}

export interface ImportedNic {
  location: string;
  mac?: string;
  model?: string;
  source: { kind: 'user' } | { kind: 'network' | 'bridge'; name: string };
  tuning: Tuning;
}

export interface ImportedDomain {
  name: string;
  uuid?: string;
  /** `kvm` → auto (KVM when it works here), `qemu` → tcg. */
  accel: 'auto' | 'tcg';
  memoryMiB: number;
  cpus: number;
  machine?: string;
  cpuMode?: string;
  boot?: KernelBoot;
  disks: ImportedDisk[];
  nics: ImportedNic[];
  graphics: string[];
  serial: boolean;
  guestAgent: boolean;
  /** libvirt's performance settings as virtnode's tuning knobs (src/interop/libvirt-tuning.ts). */
  tuning: Tuning;
}

export type { ImportWarning } from './xml-tracker.ts';

const UNIT_BYTES: Record<string, number> = {
  b: 1, bytes: 1, k: 1024, kib: 1024, kb: 1000, m: 1024 ** 2, mib: 1024 ** 2, mb: 1000 ** 2,
  g: 1024 ** 3, gib: 1024 ** 3, gb: 1000 ** 3, t: 1024 ** 4, tib: 1024 ** 4, tb: 1000 ** 4,
};
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0';
/** Machine types of virtnode's own chipset (it always runs q35). */
const Q35 = /^(q35|pc-q35-.*)$/;
const HOST_CPU_MODES = new Set(['host-passthrough', 'host-model', 'maximum']);

function memoryMiB(t: Tracker, el: XmlElement): number {
  const unit = (t.attr(el, 'unit') ?? 'KiB').toLowerCase();
  const factor = UNIT_BYTES[unit];
  const value = Number(el.text.trim());
  if (factor === undefined) throw invalid(t.path(el), `unknown unit "${unit}"`, 'libvirt units: b, KiB, MiB, GiB, TiB, KB, MB, GB, TB');
  if (!Number.isInteger(value) || value <= 0) throw invalid(t.path(el), `"${el.text.trim()}" is not a positive whole number`);
  return Math.max(1, Math.round((value * factor) / 1024 ** 2));
}

function readOs(t: Tracker, domain: XmlElement, out: ImportedDomain): void {
  const os = t.one(domain, 'os');
  if (os === undefined) return;
  t.use(os);
  const type = t.one(os, 'type');
  if (type !== undefined) {
    t.use(type);
    if (type.text.trim() !== 'hvm') t.note(type, `os type "${type.text.trim()}": virtnode runs full (hvm) virtual machines`);
    const arch = t.attr(type, 'arch');
    if (arch !== undefined && arch !== 'x86_64') t.note(type, `arch ${arch}: virtnode runs x86_64 guests`, 'arch');
    const machine = t.attr(type, 'machine');
    if (machine !== undefined) {
      out.machine = machine;
      if (!Q35.test(machine)) t.note(type, `machine ${machine}: virtnode's machines are q35 (PCIe); the guest sees another chipset and its devices at new addresses`, 'machine');
    }
  }
  for (const boot of t.all(os, 'boot')) {
    const dev = t.attr(boot, 'dev');
    if (dev !== 'hd') t.note(boot, `boot device ${dev ?? '(none)'}: virtnode boots from the first disk`);
  }
  const kernel = t.one(os, 'kernel');
  if (kernel !== undefined) {
    t.use(kernel);
    const initrd = t.one(os, 'initrd');
    const cmdline = t.one(os, 'cmdline');
    out.boot = {
      kernel: kernel.text.trim(),
      ...(initrd === undefined ? {} : { initrd: t.use(initrd).text.trim() }),
      ...(cmdline === undefined ? {} : { cmdline: t.use(cmdline).text.trim() }),
    };
  }
}

function readDisk(t: Tracker, disk: XmlElement): ImportedDisk | undefined {
  const location = t.path(disk);
  const type = t.attr(disk, 'type') ?? 'file';
  const device = t.attr(disk, 'device') ?? 'disk';
  if (device !== 'disk' && device !== 'cdrom') {
    t.note(disk, `a ${device} device is not imported: virtnode attaches disks and read-only images`);
    return undefined;
  }
  const source = t.one(disk, 'source');
  const path = source === undefined ? undefined : type === 'file' ? t.attr(source, 'file') : type === 'block' ? t.attr(source, 'dev') : undefined;
  if (type !== 'file' && type !== 'block') {
    t.note(disk, `a disk of type ${type} is not imported: virtnode uses files (and block devices)`);
    return undefined;
  }
  if (path === undefined) {
    t.note(disk, `an empty ${device} drive is not imported`);
    return undefined;
  }
  if (!path.startsWith('/')) throw invalid(`${location}/source`, `"${path}" is not an absolute path`);
  const driver = t.one(disk, 'driver');
  let format: DiskFormat | undefined;
  let cache: string | undefined;
  let tuning: Tuning = {};
  if (driver !== undefined) {
    const name = t.attr(driver, 'name');
    if (name !== undefined && name !== 'qemu') t.note(driver, `driver ${name}: virtnode drives disks with QEMU`, 'name');
    const f = t.attr(driver, 'type');
    if (f !== undefined) {
      if (f !== 'qcow2' && f !== 'raw') throw invalid(`${location}/driver/@type`, `${f} images are not supported`, `convert it: qemu-img convert -O qcow2 ${path} NEW.qcow2`);
      format = f;
    }
    cache = t.attr(driver, 'cache');
    tuning = readDiskDriverTuning(t, driver);
  }
  const target = t.one(disk, 'target');
  if (target !== undefined) t.attr(target, 'dev'); // virtnode names its disks itself
  const bus = (target === undefined ? undefined : t.attr(target, 'bus')) ?? 'virtio';
  if (bus !== 'virtio') t.warnings.push({ path: `${location}/target/@bus`, message: `bus ${bus}: virtnode attaches disks as virtio-blk; the guest needs virtio drivers (Linux has them)` });
  const ro = t.one(disk, 'readonly');
  if (ro !== undefined) t.use(ro);
  if (device === 'cdrom') t.warnings.push({ path: location, message: 'a cdrom becomes a read-only virtio disk' });
  return { location, path, ...(format === undefined ? {} : { format }), bus, ...(cache === undefined ? {} : { cache }), device, readonly: ro !== undefined || device === 'cdrom', tuning };
}

function readNic(t: Tracker, nic: XmlElement): ImportedNic | undefined {
  const location = t.path(nic);
  const type = t.attr(nic, 'type');
  const source = t.one(nic, 'source');
  let imported: ImportedNic['source'];
  if (type === 'user') imported = { kind: 'user' };
  else if ((type === 'network' || type === 'bridge') && source !== undefined && t.attr(source, type) !== undefined) imported = { kind: type, name: source.attributes.get(type)! };
  else {
    t.note(nic, `an interface of type ${type ?? '(none)'} is not imported: virtnode NICs are user-mode or on a managed network`);
    return undefined;
  }
  const out: ImportedNic = { location, source: imported, tuning: {} };
  const mac = t.one(nic, 'mac');
  if (mac !== undefined) {
    const address = t.attr(mac, 'address');
    if (address === undefined || !MAC.test(address)) throw invalid(`${t.path(mac)}/@address`, `"${address ?? ''}" is not a MAC address`);
    out.mac = address.toLowerCase();
  }
  const model = t.one(nic, 'model');
  if (model !== undefined) {
    out.model = t.attr(model, 'type')!;
    if (out.model !== 'virtio') t.warnings.push({ path: `${t.path(model)}/@type`, message: `model ${out.model}: virtnode's NICs are virtio-net` });
  }
  const driver = t.one(nic, 'driver');
  if (driver !== undefined) out.tuning = readNicDriverTuning(t, driver);
  return out;
}

function readDevices(t: Tracker, devices: XmlElement, out: ImportedDomain): void {
  t.use(devices);
  for (const el of devices.children) {
    switch (el.name) {
      case 'emulator':
        t.use(el); // virtnode runs its own qemu-system-x86_64
        break;
      case 'disk': {
        const disk = readDisk(t, el);
        if (disk !== undefined) out.disks.push(disk);
        break;
      }
      case 'interface': {
        const nic = readNic(t, el);
        if (nic !== undefined) out.nics.push(nic);
        break;
      }
      case 'controller': {
        const type = t.attr(el, 'type');
        t.attr(el, 'model');
        t.attr(el, 'index');
        t.attr(el, 'ports');
        // virtnode makes the controllers its own devices need (PCIe root ports, virtio-serial); USB it has none.
        if (type === 'usb') t.note(el, 'virtnode machines have no USB controller');
        break;
      }
      case 'serial':
      case 'console': {
        const type = t.attr(el, 'type');
        const target = t.one(el, 'target');
        if (target !== undefined) {
          t.attr(target, 'port');
          const targetType = t.attr(target, 'type');
          if (targetType !== undefined && targetType !== 'serial' && targetType !== 'isa-serial') t.note(target, `a ${targetType} console: virtnode's console is the first serial port`, 'type');
        }
        if (type !== 'pty') t.note(el, `a ${type ?? ''} serial port: virtnode's serial console is a UNIX socket with a log (virtnode console)`, 'type');
        if (out.serial && el.name === 'serial') t.note(el, 'a second serial port: virtnode gives a machine one');
        out.serial = true;
        break;
      }
      case 'channel': {
        const target = t.one(el, 'target');
        const name = target?.attributes.get('name');
        if (target !== undefined && name === GUEST_AGENT_CHANNEL) {
          t.attr(el, 'type');
          t.attr(target, 'type');
          t.attr(target, 'name');
          const source = t.one(el, 'source');
          if (source !== undefined) {
            t.attr(source, 'mode');
            t.attr(source, 'path');
          }
          out.guestAgent = true;
        }
        break;
      }
      case 'graphics': {
        const type = t.attr(el, 'type')!;
        if (type === 'vnc') {
          out.graphics.push('vnc');
          // virtnode's VNC listens on a UNIX socket (virtnode vnc), never on a port.
          for (const a of ['port', 'autoport', 'listen']) t.attr(el, a);
          const listen = t.one(el, 'listen');
          if (listen !== undefined) t.note(listen, "virtnode's VNC server listens on a UNIX socket (virtnode vnc)");
        } else {
          t.note(el, `${type} graphics: virtnode offers a VGA display over VNC`);
        }
        break;
      }
      case 'video': {
        const model = t.one(el, 'model');
        const type = model === undefined ? undefined : t.attr(model, 'type');
        t.use(el);
        if (model !== undefined) {
          for (const a of ['vram', 'heads', 'primary']) t.attr(model, a);
          if (type !== 'vga') t.note(model, `video ${type ?? ''}: virtnode's display is a standard VGA`, 'type');
        }
        break;
      }
      case 'memballoon':
      case 'rng': {
        // virtnode always adds a virtio balloon and a virtio RNG (fed from the host's /dev/urandom).
        const model = t.attr(el, 'model');
        if (model !== 'virtio' && model !== 'none') t.note(el, `${el.name} model ${model ?? ''}: virtnode's is virtio`, 'model');
        if (el.name === 'memballoon') readBalloonTuning(t, el, out.tuning);
        const backend = t.one(el, 'backend');
        if (backend !== undefined) t.attr(backend, 'model');
        break;
      }
      default:
        break; // reported as not mapped
    }
  }
}

/** Parses and maps a domain XML. Bad XML or a value virtnode cannot take is an INVALID error naming its place. */
export function readLibvirtDomain(xml: string, options: { field?: string } = {}): { domain: ImportedDomain; warnings: ImportWarning[] } {
  const root = parseXml(xml, options.field ?? 'xml');
  if (root.name !== 'domain') throw invalid(options.field ?? 'xml', `the root element is <${root.name}>, not <domain>`, 'give a libvirt domain XML (virsh dumpxml NAME)');
  const t = new Tracker(root);
  t.use(root);
  const type = t.attr(root, 'type');
  t.attr(root, 'id'); // the running domain's number in libvirt, nothing of the machine
  const nameEl = t.one(root, 'name');
  if (nameEl === undefined || nameEl.text.trim() === '') throw invalid('/domain/name', 'the domain has no name');
  const out: ImportedDomain = {
    name: t.use(nameEl).text.trim(),
    accel: type === 'qemu' ? 'tcg' : 'auto',
    memoryMiB: 0,
    cpus: 1,
    disks: [],
    nics: [],
    graphics: [],
    serial: false,
    guestAgent: false,
    tuning: {},
  };
  if (type !== 'kvm' && type !== 'qemu') t.note(root, `domain type ${type ?? '(none)'}: virtnode runs QEMU, with KVM when it works`, 'type');
  const uuid = t.one(root, 'uuid');
  if (uuid !== undefined) {
    const text = t.use(uuid).text.trim();
    if (!UUID.test(text)) throw invalid('/domain/uuid', `"${text}" is not a UUID`);
    out.uuid = text.replace(/-/g, '').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5').toLowerCase();
  }
  const memory = t.one(root, 'memory');
  if (memory === undefined) throw invalid('/domain/memory', 'the domain has no memory size');
  out.memoryMiB = memoryMiB(t, memory);
  const current = t.one(root, 'currentMemory');
  if (current !== undefined && memoryMiB(t, current) !== out.memoryMiB) {
    t.warnings.push({ path: '/domain/currentMemory', message: 'a ballooned-down current memory: virtnode starts the guest with all of <memory>' });
  }
  const vcpu = t.one(root, 'vcpu');
  if (vcpu !== undefined) {
    const n = Number(t.use(vcpu).text.trim());
    if (!Number.isInteger(n) || n < 1) throw invalid('/domain/vcpu', `"${vcpu.text.trim()}" is not a number of CPUs`);
    out.cpus = n;
    const placement = t.attr(vcpu, 'placement');
    if (placement !== undefined && placement !== 'static') t.note(vcpu, `placement ${placement} is not kept`, 'placement');
  }
  readOs(t, root, out);
  const features = t.one(root, 'features');
  if (features !== undefined) {
    t.use(features);
    for (const f of features.children) if (f.name === 'acpi' || f.name === 'apic') t.use(f); // virtnode's machines have both
  }
  const cputune = t.one(root, 'cputune');
  if (cputune !== undefined) readCputune(t, cputune, out.tuning, out.cpus);
  const backing = t.one(root, 'memoryBacking');
  if (backing !== undefined) readMemoryBacking(t, backing, out.tuning);
  const iothreads = t.one(root, 'iothreads');
  if (iothreads !== undefined) t.use(iothreads); // the disks' iothread attributes say which use one
  const cpu = t.one(root, 'cpu');
  if (cpu !== undefined) {
    const mode = t.attr(cpu, 'mode') ?? 'custom';
    out.cpuMode = mode;
    readCpuTuning(t, cpu, out.tuning, out);
    if (!HOST_CPU_MODES.has(mode)) {
      const model = t.one(cpu, 'model');
      if (model === undefined) t.note(cpu, `cpu mode ${mode} without a model: virtnode gives the guest the host's CPU (KVM) or QEMU's max (TCG)`);
      t.attr(cpu, 'match');
      t.attr(cpu, 'check');
    } else {
      t.attr(cpu, 'check');
      t.attr(cpu, 'migratable');
    }
  }
  const clock = t.one(root, 'clock');
  if (clock !== undefined && t.attr(clock, 'offset') !== 'utc') t.note(clock, "virtnode's guests keep their clock in UTC", 'offset');
  const devices = t.one(root, 'devices');
  if (devices !== undefined) readDevices(t, devices, out);
  mergeDeviceTuning(t, out.disks, out.tuning);
  // Queues are for NICs on managed networks (taps); user-mode NICs have one queue whatever they say.
  mergeDeviceTuning(t, out.nics.filter((n) => n.source.kind !== 'user'), out.tuning);
  return { domain: out, warnings: [...t.warnings, ...t.unused()].sort((a, b) => order(root, t, a.path) - order(root, t, b.path)) };
}

/** Warnings in document order: by the position of the element their path names. */
function order(root: XmlElement, t: Tracker, path: string): number {
  const elementPath = path.replace(/\/@[^/]+$/, '');
  let i = 0;
  let found = -1;
  const walk = (el: XmlElement) => {
    if (t.path(el) === elementPath) found = i;
    i++;
    el.children.forEach(walk);
  };
  walk(root);
  return found;
}
