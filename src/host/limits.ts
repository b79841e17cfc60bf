import { cpus, totalmem } from 'node:os';

/** What one instance may ask for at most: the host's CPUs and memory. */
export interface HostLimits {
  cpus: number;
  memoryBytes: number;
}

export function hostLimits(): HostLimits {
  return { cpus: cpus().length, memoryBytes: totalmem() };
}
