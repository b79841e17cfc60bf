import { formatCpuList } from '../lib/cpu-list.ts';
import { invalid, VirtnodeError } from '../lib/errors.ts';
import type { TuningHostFacts } from '../host/tuning-facts.ts';
import { type Accel, DISK_AIO_MODES, DISK_CACHE_MODES, type Tuning, usesDirectIo } from './model.ts';

const MAX_QUEUES = 16;
const MAX_NUMA_NODES = 8;
const CPU_MODEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function cpuList(field: string, value: unknown): number[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((n) => Number.isInteger(n) && n >= 0)) {
    throw invalid(field, `${JSON.stringify(value)} is not a list of host CPU numbers`, 'e.g. 0,1 (see /sys/devices/system/cpu/online)');
  }
  return value as number[];
}

function queues(field: string, value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > MAX_QUEUES) {
    throw invalid(field, `${JSON.stringify(value)} is not valid`, `use a whole number from 1 to ${MAX_QUEUES}`);
  }
  return value as number;
}

function oneOf<T extends string>(field: string, value: unknown, valid: readonly T[]): T {
  if (typeof value !== 'string' || !valid.includes(value as T)) throw invalid(field, `${JSON.stringify(value)} is not valid`, `use one of ${valid.join(', ')}`);
  return value as T;
}

function flag(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalid(field, `${JSON.stringify(value)} is not true or false`);
  return value;
}

/**
 * Checks a tuning request by itself and against the instance's size (no host facts needed): the types, ranges
 * and combinations QEMU would refuse. Returns the tuning with only the fields that were given.
 */
export function validateTuning(input: Readonly<Record<string, unknown>>, instance: { cpus: number; memoryMiB: number }): Tuning {
  const known = new Set(['cpuModel', 'vcpuPins', 'emulatorPins', 'numaNodes', 'hugepages', 'diskCache', 'diskAio', 'discard', 'iothreads', 'diskQueues', 'netQueues', 'freePageReporting']);
  for (const key of Object.keys(input)) {
    if (!known.has(key)) throw invalid(`tuning.${key}`, 'is not a tuning knob', `use one of ${[...known].join(', ')}`);
  }
  const tuning: Tuning = {};
  const v = input;
  if (v['cpuModel'] !== undefined) {
    if (typeof v['cpuModel'] !== 'string' || !CPU_MODEL.test(v['cpuModel'])) throw invalid('--cpu-model', `${JSON.stringify(v['cpuModel'])} is not a CPU model name`, 'see qemu-system-x86_64 -cpu help');
    tuning.cpuModel = v['cpuModel'];
  }
  if (v['vcpuPins'] !== undefined) {
    const pins = cpuList('--pin-vcpus', v['vcpuPins']);
    if (pins.length !== instance.cpus) {
      throw invalid('--pin-vcpus', `gives ${pins.length} host CPU${pins.length === 1 ? '' : 's'} for ${instance.cpus} vCPU${instance.cpus === 1 ? '' : 's'}`, 'give one host CPU per vCPU, in vCPU order');
    }
    tuning.vcpuPins = pins;
  }
  if (v['emulatorPins'] !== undefined) tuning.emulatorPins = [...new Set(cpuList('--pin-emulator', v['emulatorPins']))];
  if (v['numaNodes'] !== undefined) {
    const nodes = v['numaNodes'];
    if (!Number.isInteger(nodes) || (nodes as number) < 1 || (nodes as number) > MAX_NUMA_NODES) throw invalid('--numa-nodes', `${JSON.stringify(nodes)} is not valid`, `use a whole number from 1 to ${MAX_NUMA_NODES}`);
    const n = nodes as number;
    if (instance.cpus % n !== 0) throw invalid('--numa-nodes', `${instance.cpus} vCPUs do not split evenly into ${n} nodes`, 'use a number of nodes that divides --cpus');
    if (instance.memoryMiB % n !== 0) throw invalid('--numa-nodes', `${instance.memoryMiB} MiB do not split evenly into ${n} nodes`, 'use a memory size that divides by the number of nodes');
    tuning.numaNodes = n;
  }
  if (v['hugepages'] !== undefined) tuning.hugepages = flag('--hugepages', v['hugepages']);
  if (v['diskCache'] !== undefined) tuning.diskCache = oneOf('--disk-cache', v['diskCache'], DISK_CACHE_MODES);
  if (v['diskAio'] !== undefined) tuning.diskAio = oneOf('--disk-aio', v['diskAio'], DISK_AIO_MODES);
  if (tuning.diskAio === 'native' && !usesDirectIo(tuning.diskCache)) {
    throw invalid('--disk-aio', 'native needs direct I/O', 'add --disk-cache none (or directsync), or use --disk-aio threads or io_uring');
  }
  if (v['discard'] !== undefined) tuning.discard = flag('--discard', v['discard']);
  if (v['iothreads'] !== undefined) tuning.iothreads = flag('--iothreads', v['iothreads']);
  if (v['diskQueues'] !== undefined) tuning.diskQueues = queues('--disk-queues', v['diskQueues']);
  if (v['netQueues'] !== undefined) tuning.netQueues = queues('--net-queues', v['netQueues']);
  if (v['freePageReporting'] !== undefined) tuning.freePageReporting = flag('--free-page-reporting', v['freePageReporting']);
  return tuning;
}


/**
 * Checks a tuning against what this host offers now. Run before an instance is defined and again before each
 * start (the host can change in between: huge pages taken, CPUs offlined); a failure changes nothing.
 */
export function checkTuningOnHost(tuning: Tuning, instance: { memoryMiB: number; tapNics: number; accel?: Accel }, host: TuningHostFacts): void {
  const online = new Set(host.onlineCpus);
  const onlineText = formatCpuList(host.onlineCpus);
  for (const [field, pins] of [['--pin-vcpus', tuning.vcpuPins], ['--pin-emulator', tuning.emulatorPins]] as const) {
    const offline = (pins ?? []).filter((c) => !online.has(c));
    if (offline.length > 0) {
      throw new VirtnodeError('HOST_UNSUPPORTED', `${field}: host CPU ${formatCpuList(offline)} is not online on this host`, { field, hint: `this host's online CPUs are ${onlineText}` });
    }
  }
  if (tuning.cpuModel !== undefined) {
    if (host.cpuModels !== undefined && !host.cpuModels.includes(tuning.cpuModel)) {
      throw new VirtnodeError('HOST_UNSUPPORTED', `--cpu-model: this QEMU has no CPU model "${tuning.cpuModel}"`, { field: '--cpu-model', hint: 'see qemu-system-x86_64 -cpu help' });
    }
    if (tuning.cpuModel === 'host' && instance.accel === 'tcg') {
      throw new VirtnodeError('HOST_UNSUPPORTED', '--cpu-model: host needs KVM, and this start runs under TCG (software emulation)', { field: '--cpu-model', hint: 'use max or a named model, or fix KVM (virtnode host check)' });
    }
  }
  if (tuning.hugepages === true) {
    const { pageSizeKiB, free, mount } = host.hugepages;
    if (mount === undefined) {
      throw new VirtnodeError('HOST_UNSUPPORTED', '--hugepages: no hugetlbfs is mounted on this host', { field: '--hugepages', hint: 'mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages' });
    }
    const needed = Math.ceil((instance.memoryMiB * 1024) / pageSizeKiB);
    if (free < needed) {
      throw new VirtnodeError('HOST_UNSUPPORTED', `--hugepages: ${instance.memoryMiB} MiB needs ${needed} free ${pageSizeKiB} KiB huge pages; this host has ${free}`, {
        field: '--hugepages',
        hint: `reserve more: echo ${needed} > /sys/kernel/mm/hugepages/hugepages-${pageSizeKiB}kB/nr_hugepages (or launch without --hugepages)`,
      });
    }
  }
  if (usesDirectIo(tuning.diskCache) && !host.directIo) {
    throw new VirtnodeError('HOST_UNSUPPORTED', `--disk-cache: ${tuning.diskCache} needs direct I/O (O_DIRECT), which the filesystem of virtnode's state directory does not offer (tmpfs does not)`, {
      field: '--disk-cache',
      hint: 'use --disk-cache writeback or writethrough, or keep the state directory on ext4/xfs',
    });
  }
  if (tuning.diskAio === 'io_uring' && !host.ioUring) {
    throw new VirtnodeError('HOST_UNSUPPORTED', '--disk-aio: io_uring is disabled on this host (kernel.io_uring_disabled)', { field: '--disk-aio', hint: 'use --disk-aio threads' });
  }
  if (tuning.netQueues !== undefined && tuning.netQueues > 1 && instance.tapNics === 0) {
    throw invalid('--net-queues', 'multi-queue needs a NIC on a managed network (user-mode NICs have one queue)', 'add --network NAME, or leave --net-queues out');
  }
}

/** The flag each knob is named by in messages (`--pin-vcpus` for vcpuPins). */
const KNOB_FLAGS: Record<keyof Tuning, string> = {
  cpuModel: '--cpu-model',
  vcpuPins: '--pin-vcpus',
  emulatorPins: '--pin-emulator',
  numaNodes: '--numa-nodes',
  hugepages: '--hugepages',
  diskCache: '--disk-cache',
  diskAio: '--disk-aio',
  discard: '--discard',
  iothreads: '--iothreads',
  diskQueues: '--disk-queues',
  netQueues: '--net-queues',
  freePageReporting: '--free-page-reporting',
};

/**
 * The knobs of a tuning that this instance can have on this host, for settings brought from elsewhere (a libvirt
 * domain from another host): each knob that fails validateTuning or checkTuningOnHost is left out and reported.
 */
export function fitTuning(
  input: Tuning,
  instance: { cpus: number; memoryMiB: number; tapNics: number; accel?: Accel },
  host: TuningHostFacts,
): { tuning: Tuning; dropped: Array<{ knob: keyof Tuning; message: string }> } {
  let tuning: Tuning = { ...input };
  const dropped: Array<{ knob: keyof Tuning; message: string }> = [];
  for (;;) {
    try {
      tuning = validateTuning(tuning as Record<string, unknown>, instance);
      checkTuningOnHost(tuning, instance, host);
      return { tuning, dropped };
    } catch (e) {
      const knob = (Object.keys(KNOB_FLAGS) as Array<keyof Tuning>).find((k) => e instanceof VirtnodeError && KNOB_FLAGS[k] === e.field && tuning[k] !== undefined);
      if (knob === undefined) throw e;
      dropped.push({ knob, message: (e as VirtnodeError).message });
      delete tuning[knob];
    }
  }
}
