import { describe, expect, it } from 'vitest';
import { VirtnodeError } from '../lib/errors.ts';
import { parseDiskSize, parseFormat } from './volumes.ts';

function refusal(fn: () => unknown): VirtnodeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof VirtnodeError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('volume input parsing', () => {
  it('reads binary K/M/G/T sizes', () => {
    expect(parseDiskSize('--size', '512K')).toBe(512 * 1024);
    expect(parseDiskSize('--size', '10G')).toBe(10 * 2 ** 30);
    expect(parseDiskSize('--size', '1T')).toBe(2 ** 40);
    expect(parseDiskSize('--size', '1.5G')).toBe(1.5 * 2 ** 30);
    expect(parseDiskSize('--size', '2GiB')).toBe(2 * 2 ** 30);
    expect(parseDiskSize('--size', '1048576')).toBe(2 ** 20);
  });

  it('refuses anything else, naming the field', () => {
    for (const bad of ['', '10X', '-1G', '0', '1e9', '10 G B', '1000', '0.1K', 'G', '10GG']) {
      const e = refusal(() => parseDiskSize('--size', bad));
      expect(e.code, bad).toBe('INVALID');
      expect(e.message.startsWith('--size: '), e.message).toBe(true);
    }
  });

  it('knows qcow2 and raw only', () => {
    expect(parseFormat('--format', undefined, 'qcow2')).toBe('qcow2');
    expect(parseFormat('--format', 'raw', 'qcow2')).toBe('raw');
    expect(refusal(() => parseFormat('--format', 'vmdk', 'qcow2')).message).toBe('--format: "vmdk" is not a disk format');
  });
});
