import { describe, expect, it } from 'vitest';
import type { TuningHostFacts } from '../host/tuning-facts.ts';
import { parseCpuModels, hugetlbfsMount } from '../host/tuning-facts.ts';
import { formatCpuList, parseCpuList } from '../lib/cpu-list.ts';
import { isVirtnodeError } from '../lib/errors.ts';
import { checkTuningOnHost, fitTuning, validateTuning } from './tuning.ts';

const host: TuningHostFacts = {
  onlineCpus: [0, 1, 2, 3],
  cpuModels: ['max', 'host', 'qemu64', 'Skylake-Server-v4'],
  hugepages: { pageSizeKiB: 2048, free: 512, mount: '/dev/hugepages' },
  ioUring: true,
  directIo: true,
};
const vm = { cpus: 2, memoryMiB: 1024 };

function refusal(fn: () => unknown): { code: string; field: string | undefined; message: string } {
  try {
    fn();
  } catch (e) {
    if (isVirtnodeError(e)) return { code: e.code, field: e.field, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('validateTuning', () => {
  it('keeps exactly the knobs given', () => {
    expect(validateTuning({}, vm)).toEqual({});
    expect(validateTuning({ vcpuPins: [1, 0], diskCache: 'none', diskAio: 'native', netQueues: 2 }, vm)).toEqual({ vcpuPins: [1, 0], diskCache: 'none', diskAio: 'native', netQueues: 2 });
  });

  it.each([
    [{ vcpuPins: [0] }, '--pin-vcpus', 'gives 1 host CPU for 2 vCPUs'],
    [{ vcpuPins: [0, -1] }, '--pin-vcpus', 'not a list of host CPU numbers'],
    [{ numaNodes: 3 }, '--numa-nodes', '2 vCPUs do not split evenly into 3 nodes'],
    [{ numaNodes: 0 }, '--numa-nodes', 'not valid'],
    [{ diskCache: 'fast' }, '--disk-cache', 'not valid'],
    [{ diskAio: 'native' }, '--disk-aio', 'native needs direct I/O'],
    [{ diskAio: 'native', diskCache: 'writeback' }, '--disk-aio', 'native needs direct I/O'],
    [{ netQueues: 17 }, '--net-queues', 'not valid'],
    [{ cpuModel: 'a,b' }, '--cpu-model', 'not a CPU model name'],
    [{ hugepages: 'yes' }, '--hugepages', 'not true or false'],
    [{ turbo: true }, 'tuning.turbo', 'is not a tuning knob'],
  ])('refuses %j naming %s', (input, field, text) => {
    const r = refusal(() => validateTuning(input, vm));
    expect(r).toMatchObject({ code: 'INVALID', field });
    expect(r.message).toContain(text);
  });
});

describe('checkTuningOnHost', () => {
  const on = (tuning: Parameters<typeof checkTuningOnHost>[0], extra: Partial<Parameters<typeof checkTuningOnHost>[1]> = {}, facts: Partial<TuningHostFacts> = {}) =>
    checkTuningOnHost(tuning, { memoryMiB: 1024, tapNics: 1, ...extra }, { ...host, ...facts });

  it('accepts what the host offers', () => {
    expect(() => on({ vcpuPins: [2, 3], emulatorPins: [0, 1], cpuModel: 'Skylake-Server-v4', hugepages: true, diskCache: 'none', diskAio: 'io_uring', netQueues: 2 })).not.toThrow();
  });

  it.each([
    [{ vcpuPins: [0, 7] }, {}, {}, '--pin-vcpus', 'host CPU 7 is not online'],
    [{ emulatorPins: [4, 5] }, {}, {}, '--pin-emulator', 'host CPU 4-5 is not online'],
    [{ cpuModel: 'Nehalem-v9' }, {}, {}, '--cpu-model', 'no CPU model "Nehalem-v9"'],
    [{ cpuModel: 'host' }, { accel: 'tcg' as const }, {}, '--cpu-model', 'host needs KVM'],
    [{ hugepages: true }, {}, { hugepages: { pageSizeKiB: 2048, free: 100, mount: '/dev/hugepages' } }, '--hugepages', 'needs 512 free 2048 KiB huge pages; this host has 100'],
    [{ hugepages: true }, {}, { hugepages: { pageSizeKiB: 2048, free: 1000, mount: undefined } }, '--hugepages', 'no hugetlbfs is mounted'],
    [{ diskCache: 'none' as const }, {}, { directIo: false }, '--disk-cache', 'needs direct I/O'],
    [{ diskAio: 'io_uring' as const }, {}, { ioUring: false }, '--disk-aio', 'io_uring is disabled'],
    [{ netQueues: 2 }, { tapNics: 0 }, {}, '--net-queues', 'needs a NIC on a managed network'],
  ])('refuses %j on a host that cannot', (tuning, extra, facts, field, text) => {
    const r = refusal(() => on(tuning, extra, facts));
    expect(r.field).toBe(field);
    expect(r.message).toContain(text);
  });
});

describe('host facts parsers', () => {
  it('reads CPU lists both ways', () => {
    expect(parseCpuList('--pin-vcpus', '0-2,5')).toEqual([0, 1, 2, 5]);
    expect(parseCpuList('--pin-vcpus', '3,1')).toEqual([3, 1]);
    expect(formatCpuList([5, 0, 1, 2])).toBe('0-2,5');
    expect(refusal(() => parseCpuList('--pin-vcpus', '1-x')).field).toBe('--pin-vcpus');
    expect(refusal(() => parseCpuList('--pin-vcpus', '3-1')).message).toContain('not a valid CPU range');
  });

  it('reads QEMU CPU models and hugetlbfs mounts', () => {
    expect(parseCpuModels('Available CPUs:\nx86 486                   (alias configured by machine type)\nx86 Skylake-Server-v4  Intel Xeon\n\nRecognized CPUID flags:\n  3dnow')).toEqual(['486', 'Skylake-Server-v4']);
    expect(hugetlbfsMount('proc /proc proc rw 0 0\nhugetlbfs /mnt/huge1g hugetlbfs rw,pagesize=1024M 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,relatime 0 0\n')).toBe('/dev/hugepages');
    expect(hugetlbfsMount('proc /proc proc rw 0 0\n')).toBeUndefined();
  });
});

describe('fitTuning', () => {
  it('keeps what fits and leaves out, with the reason, each knob this host or instance cannot have', () => {
    const { tuning, dropped } = fitTuning(
      { vcpuPins: [6, 7], emulatorPins: [0], numaNodes: 2, hugepages: true, diskCache: 'none', netQueues: 4 },
      { cpus: 2, memoryMiB: 2048, tapNics: 0 },
      host,
    );
    expect(tuning).toEqual({ emulatorPins: [0], numaNodes: 2, diskCache: 'none' });
    expect(dropped.map((d) => d.knob).sort()).toEqual(['hugepages', 'netQueues', 'vcpuPins']);
    expect(dropped.find((d) => d.knob === 'vcpuPins')!.message).toContain('host CPU 6-7 is not online');
  });
});
