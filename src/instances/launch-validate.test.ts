import { describe, expect, it } from 'vitest';
import { validateLaunch } from './launch-validate.ts';
import { validateCreate } from './validate.ts';

const limits = { cpus: 4, memoryBytes: 8 * 2 ** 30 };

describe('launch of a container', () => {
  it('has no user-mode NIC, and is unprivileged unless asked', () => {
    const valid = validateLaunch({ image: 'debian-12', name: 'c1', type: 'container' }, limits);
    expect(valid).toMatchObject({ type: 'container', privileged: false, nics: [] });
    expect(validateLaunch({ image: 'debian-12', name: 'c1', type: 'container', privileged: true, networks: ['lab'] }, limits)).toMatchObject({
      privileged: true,
      nics: [{ network: 'lab' }],
    });
  });

  it('a VM keeps its user-mode NIC 0', () => {
    expect(validateLaunch({ image: 'debian-12', name: 'v1' }, limits)).toMatchObject({ type: 'vm', privileged: false, nics: [{ network: 'user' }] });
  });

  it('refuses what makes no sense for a container, naming the flag', () => {
    const refused = (request: Parameters<typeof validateLaunch>[0], field: string) => expect(() => validateLaunch(request, limits)).toThrow(expect.objectContaining({ field }));
    refused({ image: 'debian-12', type: 'jail' }, '--type');
    refused({ image: 'debian-12', privileged: true }, '--privileged');
    refused({ image: 'debian-12', type: 'container', networks: ['user'] }, '--network');
    refused({ image: 'debian-12', type: 'container', seed: 'vfat' }, '--seed');
    refused({ image: 'debian-12', type: 'container', accel: 'kvm' }, '--accel');
    refused({ image: 'debian-12', type: 'container', tuning: { hugepages: true } }, 'tuning');
    refused({ image: 'debian-12', type: 'container', diskSize: '16M' }, '--disk-size');
  });

  it('takes a disk size for a container (its writable layer), at least the minimum', () => {
    expect(validateLaunch({ image: 'debian-12', name: 'c1', type: 'container', diskSize: '2G' }, limits)).toMatchObject({ diskSizeBytes: 2 * 2 ** 30 });
    expect(() => validateLaunch({ image: 'debian-12', name: 'c1', type: 'container', diskSize: '127M' }, limits)).toThrow(
      expect.objectContaining({ field: '--disk-size', message: expect.stringContaining('127 MiB is too small'), hint: expect.stringContaining('at least 128 MiB') }),
    );
  });

  it('create sends containers to launch', () => {
    expect(() => validateCreate({ name: 'c1', type: 'container' }, limits)).toThrow(
      expect.objectContaining({ field: '--type', message: '--type: a container is made from an image', hint: expect.stringContaining('virtnode launch IMAGE --container') }),
    );
  });
});
