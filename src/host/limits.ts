import { cpus, totalmem } from 'node:os';
import { invalid } from '../lib/errors.ts';
import { formatSize, MIB, parseSize } from '../lib/units.ts';

/** What one instance may ask for at most: the host's CPUs and memory. */
export interface HostLimits {
  cpus: number;
  memoryBytes: number;
}

export function hostLimits(): HostLimits {
  return { cpus: cpus().length, memoryBytes: totalmem() };
}

const MIN_MEMORY_MIB = 16;

export function validateCpus(value: number | string | undefined, limits: HostLimits): number {
  const cpuText = String(value ?? '1');
  const cpuCount = /^\d+$/.test(cpuText) ? Number(cpuText) : Number.NaN;
  if (!Number.isInteger(cpuCount) || cpuCount < 1 || cpuCount > limits.cpus) {
    throw invalid('--cpus', `"${cpuText}" is not valid`, `use a whole number from 1 to ${limits.cpus} (this host's logical CPUs)`);
  }
  return cpuCount;
}

/** Memory in MiB; a bare number means MiB. */
export function validateMemory(text: string, limits: HostLimits): number {
  const memoryBytes = parseSize('--memory', text, 'M');
  const memoryMiB = Math.floor(memoryBytes / MIB);
  if (memoryMiB < MIN_MEMORY_MIB || memoryBytes > limits.memoryBytes) {
    throw invalid('--memory', `${text} is out of range`, `use ${MIN_MEMORY_MIB}M to ${formatSize(limits.memoryBytes)} (this host's memory)`);
  }
  return memoryMiB;
}
