import { invalid } from './errors.ts';

/** Renders a CPU list the way the kernel and taskset write it: 0-3,6. */
export function formatCpuList(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    ranges.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return ranges.join(',');
}

/** Parses a kernel CPU list (`0-3,6`), as in /sys/devices/system/cpu/online and on the command line. */
export function parseCpuList(field: string, text: string): number[] {
  const cpus: number[] = [];
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (m === null) throw invalid(field, `"${text}" is not a CPU list`, 'e.g. 0,1 or 0-3');
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first || last - first > 4096) throw invalid(field, `"${part}" is not a valid CPU range`, 'e.g. 0-3');
    for (let c = first; c <= last; c++) cpus.push(c);
  }
  return cpus;
}
