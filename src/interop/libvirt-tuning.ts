/**
 * libvirt's performance elements and virtnode's tuning knobs (src/instances/tuning.ts), both ways: <cpu> model
 * and NUMA cells, <cputune> pins, <memoryBacking> huge pages, <iothreads>, the disk driver's cache, io, discard,
 * iothread and queues, the interface driver's queues, the balloon's free page reporting. virtnode's knobs are per
 * instance: disks (or NICs) that disagree keep the first one's value, with a warning. Pure.
 */
import { DISK_AIO_MODES, DISK_CACHE_MODES, type DiskAioMode, type DiskCacheMode, type Tuning } from '../instances/model.ts';
import { formatCpuList, parseCpuList } from '../lib/cpu-list.ts';
import type { XmlElement, XmlNode } from './xml.ts';
import type { Tracker } from './xml-tracker.ts';

/**
 * Per-device settings become the instance's only when every device of that kind says the same: a disk that says
 * nothing has the default, so one `cache="unsafe"` disk next to a default one changes neither.
 */
export function mergeDeviceTuning(t: Tracker, devices: ReadonlyArray<{ location: string; tuning: Tuning }>, into: Tuning): void {
  const keys = new Set(devices.flatMap((d) => Object.keys(d.tuning) as Array<keyof Tuning>));
  for (const key of keys) {
    const values = devices.map((d) => d.tuning[key]);
    if (values.every((v) => v === values[0])) {
      (into as Record<string, unknown>)[key] = values[0];
      continue;
    }
    const said = devices.map((d) => `${d.location}: ${d.tuning[key] === undefined ? 'default' : String(d.tuning[key])}`).join(', ');
    t.warnings.push({ path: devices.find((d) => d.tuning[key] !== undefined)!.location, message: `${key} differs between devices (${said}): virtnode applies one value to all of them, so the default is kept` });
  }
}

/** <cpu mode="custom"><model> and <cpu><numa><cell>: a CPU model, and NUMA nodes when the cells split evenly. */
export function readCpuTuning(t: Tracker, cpu: XmlElement, tuning: Tuning, size: { cpus: number; memoryMiB: number }): void {
  const model = t.one(cpu, 'model');
  if ((t.attr(cpu, 'mode') ?? 'custom') === 'custom' && model !== undefined) {
    t.use(model);
    t.attr(model, 'fallback');
    tuning.cpuModel = model.text.trim();
  }
  const numa = t.one(cpu, 'numa');
  if (numa === undefined) return;
  t.use(numa);
  const cells = t.all(numa, 'cell');
  for (const cell of cells) for (const a of ['id', 'cpus', 'memory', 'unit']) t.attr(cell, a);
  const even = cells.length > 0 && size.cpus % cells.length === 0 && size.memoryMiB % cells.length === 0;
  if (even) tuning.numaNodes = cells.length;
  else t.warnings.push({ path: t.path(numa), message: `${cells.length} NUMA cells: virtnode splits vCPUs and memory evenly, and ${size.cpus} vCPUs or ${size.memoryMiB} MiB do not split ${cells.length} ways` });
}

/** <cputune>: a vcpupin of one host CPU for every vCPU, and the emulator's CPUs. */
export function readCputune(t: Tracker, cputune: XmlElement, tuning: Tuning, cpus: number): void {
  t.use(cputune);
  const pins: number[] = [];
  let complete = true;
  for (const pin of t.all(cputune, 'vcpupin')) {
    const vcpu = Number(t.attr(pin, 'vcpu'));
    const set = parseCpuList(`${t.path(pin)}/@cpuset`, t.attr(pin, 'cpuset') ?? '');
    if (set.length !== 1) {
      t.warnings.push({ path: `${t.path(pin)}/@cpuset`, message: `vCPU ${vcpu} may run on ${formatCpuList(set)}: virtnode pins each vCPU to one host CPU, so no vCPU is pinned` });
      complete = false;
    } else pins[vcpu] = set[0]!;
  }
  if (complete && pins.length === cpus && pins.every((p) => p !== undefined)) tuning.vcpuPins = pins;
  else if (complete && pins.length > 0) t.warnings.push({ path: t.path(cputune), message: 'not every vCPU is pinned: virtnode pins all vCPUs or none, so none is' });
  const emulator = t.one(cputune, 'emulatorpin');
  if (emulator !== undefined) tuning.emulatorPins = parseCpuList(`${t.path(emulator)}/@cpuset`, t.attr(emulator, 'cpuset') ?? '');
}

export function readMemoryBacking(t: Tracker, backing: XmlElement, tuning: Tuning): void {
  t.use(backing);
  const huge = t.one(backing, 'hugepages');
  if (huge !== undefined && huge.children.length === 0) {
    t.use(huge);
    tuning.hugepages = true;
  }
}

/** A disk's <driver> cache, io, discard, iothread and queues, for mergeDeviceTuning. */
export function readDiskDriverTuning(t: Tracker, driver: XmlElement): Tuning {
  const tuning: Tuning = {};
  const where = t.path(driver);
  const cache = t.attr(driver, 'cache');
  if (cache !== undefined && cache !== 'default') {
    if (DISK_CACHE_MODES.includes(cache as DiskCacheMode)) tuning.diskCache = cache as DiskCacheMode;
    else t.warnings.push({ path: `${where}/@cache`, message: `cache=${cache} is not a mode virtnode knows` });
  }
  const io = t.attr(driver, 'io');
  if (io !== undefined && io !== 'default') {
    if (DISK_AIO_MODES.includes(io as DiskAioMode)) tuning.diskAio = io as DiskAioMode;
    else t.warnings.push({ path: `${where}/@io`, message: `io=${io} is not a mode virtnode knows` });
  }
  const discard = t.attr(driver, 'discard');
  if (discard === 'unmap') tuning.discard = true;
  if (t.attr(driver, 'iothread') !== undefined) tuning.iothreads = true;
  const queues = t.attr(driver, 'queues');
  if (queues !== undefined) tuning.diskQueues = Number(queues);
  return tuning;
}

/** An interface's <driver queues>, for mergeDeviceTuning. */
export function readNicDriverTuning(t: Tracker, driver: XmlElement): Tuning {
  t.attr(driver, 'name');
  const queues = t.attr(driver, 'queues');
  return queues === undefined ? {} : { netQueues: Number(queues) };
}

export function readBalloonTuning(t: Tracker, balloon: XmlElement, tuning: Tuning): void {
  if (t.attr(balloon, 'freePageReporting') === 'on') tuning.freePageReporting = true;
}

/** What a domain XML says of an instance's tuning: elements for the domain, and attributes for its devices. */
export interface TuningXml {
  /** Children of <cpu> (the model, NUMA cells) and its mode when a model is named. */
  cpu: { mode?: string; children: XmlNode[] };
  /** Top-level elements: <memoryBacking>, <iothreads>, <cputune>. */
  domain: { memoryBacking?: XmlNode; iothreads?: XmlNode; cputune?: XmlNode };
  diskDriver: (index: number) => Record<string, string>;
  nicDriver?: XmlNode;
  balloon: Record<string, string>;
}

export function tuningXml(tuning: Tuning | undefined, size: { cpus: number; memoryMiB: number; disks: number }): TuningXml {
  const tu = tuning ?? {};
  const cpuChildren: XmlNode[] = [];
  if (tu.cpuModel !== undefined) cpuChildren.push({ name: 'model', attrs: { fallback: 'forbid' }, text: tu.cpuModel });
  if (tu.numaNodes !== undefined && tu.numaNodes > 1) {
    const per = size.cpus / tu.numaNodes;
    cpuChildren.push({
      name: 'numa',
      children: Array.from({ length: tu.numaNodes }, (_, i) => ({
        name: 'cell',
        attrs: { id: String(i), cpus: per === 1 ? String(i) : `${i * per}-${i * per + per - 1}`, memory: String(size.memoryMiB / tu.numaNodes!), unit: 'MiB' },
      })),
    });
  }
  const pins: XmlNode[] = (tu.vcpuPins ?? []).map((cpu, vcpu) => ({ name: 'vcpupin', attrs: { vcpu: String(vcpu), cpuset: String(cpu) } }));
  if (tu.emulatorPins !== undefined) pins.push({ name: 'emulatorpin', attrs: { cpuset: formatCpuList(tu.emulatorPins) } });
  const driver: Record<string, string> = {};
  if (tu.diskCache !== undefined) driver['cache'] = tu.diskCache;
  if (tu.diskAio !== undefined) driver['io'] = tu.diskAio;
  if (tu.discard === true) driver['discard'] = 'unmap';
  if (tu.diskQueues !== undefined) driver['queues'] = String(tu.diskQueues);
  return {
    cpu: { ...(tu.cpuModel === undefined ? {} : { mode: 'custom' }), children: cpuChildren },
    domain: {
      ...(tu.hugepages === true ? { memoryBacking: { name: 'memoryBacking', children: [{ name: 'hugepages' }] } } : {}),
      ...(tu.iothreads === true && size.disks > 0 ? { iothreads: { name: 'iothreads', text: String(size.disks) } } : {}),
      ...(pins.length > 0 ? { cputune: { name: 'cputune', children: pins } } : {}),
    },
    diskDriver: (index) => ({ ...driver, ...(tu.iothreads === true ? { iothread: String(index + 1) } : {}) }),
    ...(tu.netQueues !== undefined ? { nicDriver: { name: 'driver', attrs: { name: 'vhost', queues: String(tu.netQueues) } } } : {}),
    balloon: tu.freePageReporting === true ? { freePageReporting: 'on' } : {},
  };
}
