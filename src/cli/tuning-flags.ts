import type { Command } from 'commander';
import { parseCpuList } from '../lib/cpu-list.ts';

/** The tuning knobs as flags, the same on `create` and `launch` (validated in instances/tuning.ts). */
export function addTuningOptions(command: Command): Command {
  return command
    .option('--cpu-model <model>', 'tuning: a QEMU CPU model (qemu-system-x86_64 -cpu help); default host under KVM, max under TCG')
    .option('--pin-vcpus <cpus>', 'tuning: the host CPU of each vCPU, in order, e.g. 2,3')
    .option('--pin-emulator <cpus>', "tuning: host CPUs for QEMU's other threads, e.g. 0-1")
    .option('--numa-nodes <n>', 'tuning: guest NUMA nodes (vCPUs and memory split evenly)')
    .option('--hugepages', "tuning: back guest memory with the host's free huge pages")
    .option('--disk-cache <mode>', 'tuning: none, writeback, writethrough, directsync or unsafe')
    .option('--disk-aio <mode>', 'tuning: threads, native (needs --disk-cache none) or io_uring')
    .option('--discard', "tuning: the guest's discard (TRIM) frees space in the disk file")
    .option('--iothreads', 'tuning: one I/O thread per disk')
    .option('--disk-queues <n>', 'tuning: virtio-blk queues per disk')
    .option('--net-queues <n>', 'tuning: virtio-net queue pairs per NIC on a managed network')
    .option('--free-page-reporting', 'tuning: the guest returns freed memory to the host');
}

/** A whole number as typed, or the text itself so validation names the flag and the bad value. */
function integer(text: string): number | string {
  return /^\d+$/.test(text) ? Number(text) : text;
}

/** The tuning request from the parsed flags, or undefined when no knob was given. */
export function tuningInput(o: Record<string, unknown>): Record<string, unknown> | undefined {
  const text = (key: string) => (typeof o[key] === 'string' ? (o[key] as string) : undefined);
  const tuning: Record<string, unknown> = {};
  if (text('cpuModel') !== undefined) tuning['cpuModel'] = text('cpuModel');
  if (text('pinVcpus') !== undefined) tuning['vcpuPins'] = parseCpuList('--pin-vcpus', text('pinVcpus')!);
  if (text('pinEmulator') !== undefined) tuning['emulatorPins'] = parseCpuList('--pin-emulator', text('pinEmulator')!);
  if (text('numaNodes') !== undefined) tuning['numaNodes'] = integer(text('numaNodes')!);
  if (o['hugepages'] === true) tuning['hugepages'] = true;
  if (text('diskCache') !== undefined) tuning['diskCache'] = text('diskCache');
  if (text('diskAio') !== undefined) tuning['diskAio'] = text('diskAio');
  if (o['discard'] === true) tuning['discard'] = true;
  if (o['iothreads'] === true) tuning['iothreads'] = true;
  if (text('diskQueues') !== undefined) tuning['diskQueues'] = integer(text('diskQueues')!);
  if (text('netQueues') !== undefined) tuning['netQueues'] = integer(text('netQueues')!);
  if (o['freePageReporting'] === true) tuning['freePageReporting'] = true;
  return Object.keys(tuning).length === 0 ? undefined : tuning;
}

/** One line for `info`: the knobs that are set. */
export function tuningSummary(tuning: Readonly<Record<string, unknown>> | undefined): string | undefined {
  if (tuning === undefined) return undefined;
  const parts = Object.entries(tuning).map(([k, v]) => (v === true ? k : `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`));
  return parts.length === 0 ? undefined : parts.join(' ');
}
