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
      nics: [{ network: 'user' }],
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
  it('pairs each --ip with a managed --network, in order', () => {
    expect(validateCreate({ name: 'vm', kernel, network: ['user', 'lab', 'quiet'], ip: ['auto', '10.78.0.9'] }, limits).nics).toEqual([
      { network: 'user' },
      { network: 'lab' },
      { network: 'quiet', ip: '10.78.0.9' },
    ]);
    expect(validateCreate({ name: 'vm', kernel, network: 'none' }, limits).nics).toEqual([]);
  });
  it.each([
    [{ cpus: '5' }, /--cpus: "5" is not valid/],
    [{ cpus: '1.5' }, /--cpus: "1.5" is not valid/],
    [{ memory: '9G' }, /--memory: 9G is out of range/],
    [{ memory: '8M' }, /--memory: 8M is out of range/],
    [{ accel: 'hvf' }, /--accel/],
    [{ network: 'Bad_Net' }, /--network: "Bad_Net" is not a valid name/],
    [{ network: ['none', 'lab'] }, /--network: "none" means no NIC/],
    [{ ip: '10.0.0.5' }, /--ip: needs a --network/],
    [{ network: 'lab', ip: ['10.0.0.5', '10.0.0.6'] }, /--ip: 2 addresses for 1 managed network/],
    [{ initrd: kernel, kernel: undefined, diskSize: '1G' }, /--initrd and --cmdline need --kernel/],
  ])('refuses %j', (extra, message) => {
    expect(() => validateCreate({ name: 'vm', kernel, ...extra } as never, limits)).toThrow(message);
  });
});
