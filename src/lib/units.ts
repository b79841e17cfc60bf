import { invalid } from './errors.ts';

const UNIT_SHIFT: Record<string, number> = { '': 0, B: 0, K: 10, KB: 10, KIB: 10, M: 20, MB: 20, MIB: 20, G: 30, GB: 30, GIB: 30, T: 40, TB: 40, TIB: 40 };

/**
 * Parses a size such as `512M`, `1G`, `1.5GiB` or `1073741824` into bytes (binary units, like qemu-img).
 * `defaultUnit` applies to a bare number (memory is given in MiB by convention, disks in bytes).
 */
export function parseSize(field: string, text: string, defaultUnit: 'B' | 'M' = 'B'): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = (match?.[2] ?? '').toUpperCase();
  const shift = UNIT_SHIFT[unit === '' ? defaultUnit : unit];
  if (match === null || shift === undefined) {
    throw invalid(field, `"${text}" is not a size`, 'use a number with a unit: 512M, 1G, 10G (K, M, G, T; binary)');
  }
  const bytes = Math.round(Number(match[1]) * 2 ** shift);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw invalid(field, `"${text}" must be greater than zero`);
  return bytes;
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[i]}`;
}

export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;
