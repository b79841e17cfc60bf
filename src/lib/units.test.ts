import { describe, expect, it } from 'vitest';
import { VirtnodeError } from './errors.ts';
import { formatSize, parseSize } from './units.ts';

describe('parseSize', () => {
  it.each([
    ['512M', 'B', 512 * 2 ** 20],
    ['1G', 'B', 2 ** 30],
    ['1.5GiB', 'B', 1.5 * 2 ** 30],
    ['10g', 'B', 10 * 2 ** 30],
    ['1073741824', 'B', 2 ** 30],
    ['256', 'M', 256 * 2 ** 20],
    [' 2 T ', 'B', 2 * 2 ** 40],
  ] as const)('%s (bare unit %s)', (text, unit, bytes) => {
    expect(parseSize('--memory', text, unit)).toBe(bytes);
  });

  it.each(['', 'lots', '-1G', '0', '0G', '1Q', '1.2.3G', 'G', '1e9'])('refuses %j and names the field', (text) => {
    let error: unknown;
    try {
      parseSize('--disk-size', text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(VirtnodeError);
    expect((error as VirtnodeError).code).toBe('INVALID');
    expect((error as VirtnodeError).field).toBe('--disk-size');
    expect((error as VirtnodeError).message).toMatch(/^--disk-size: /);
  });

  it('formats binary sizes', () => {
    expect(formatSize(512 * 2 ** 20)).toBe('512 MiB');
    expect(formatSize(1.5 * 2 ** 30)).toBe('1.5 GiB');
    expect(formatSize(100)).toBe('100 B');
  });
});
