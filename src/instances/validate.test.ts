import { describe, expect, it } from 'vitest';
import { validateCreate } from './validate.ts';

const limits = { cpus: 4, memoryBytes: 8 * 2 ** 30 };
const kernel = process.execPath; // any readable file stands in for a kernel here

describe('validateCreate', () => {
  it('fills defaults and normalizes', () => {
    expect(validateCreate({ name: 'vm', kernel }, limits)).toEqual({
      name: 'vm',
      cpus: 1,
      memoryMiB: 512,
      accel: 'auto',
      network: 'user',
      boot: { kernel },
    });
  });
  it('takes a disk size', () => {
    expect(validateCreate({ name: 'vm', diskSize: '10G', cpus: '4', memory: '2G' }, limits)).toMatchObject({
      cpus: 4,
      memoryMiB: 2048,
      disk: { sizeBytes: 10 * 2 ** 30 },
    });
  });
  it.each([
    [{ cpus: '5' }, /--cpus: "5" is not valid/],
    [{ cpus: '1.5' }, /--cpus: "1.5" is not valid/],
    [{ memory: '9G' }, /--memory: 9G is out of range/],
    [{ memory: '8M' }, /--memory: 8M is out of range/],
    [{ accel: 'hvf' }, /--accel/],
    [{ network: 'bridge' }, /--network/],
    [{ initrd: kernel, kernel: undefined, diskSize: '1G' }, /--initrd and --cmdline need --kernel/],
  ])('refuses %j', (extra, message) => {
    expect(() => validateCreate({ name: 'vm', kernel, ...extra } as never, limits)).toThrow(message);
  });
});
