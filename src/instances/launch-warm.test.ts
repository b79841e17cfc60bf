import { describe, expect, it } from 'vitest';
import { chooseWarm, type WarmSource } from './launch-warm.ts';
import { validateLaunch } from './launch-validate.ts';
import { modulesToSkip } from './warm-first-boot.ts';

const limits = { cpus: 4, memoryBytes: 8 * 2 ** 30 };
const warm: WarmSource = {
  diskPath: '/s/templates/t/warm/disk.qcow2',
  statePath: '/s/templates/t/warm/memory.state',
  model: { qemuVersion: '7.2.22', machine: 'pc-q35-7.2', accel: 'tcg', cpus: 1, memoryMiB: 1024 },
};
const launch = (extra: Parameters<typeof validateLaunch>[0] extends infer R ? Partial<R> : never) =>
  validateLaunch({ image: 't', name: 'w1', cpus: '1', memory: '1G', ...extra }, limits);

describe('chooseWarm', () => {
  it('loads the warm state by default when the launch fits it, and boots with --cold or without one', () => {
    expect(chooseWarm(launch({}), { name: 't', warm })).toBe(warm);
    expect(chooseWarm(launch({ warm: true }), { name: 't', warm })).toBe(warm);
    expect(chooseWarm(launch({ warm: false }), { name: 't', warm })).toBeUndefined();
    expect(chooseWarm(launch({}), { name: 't' })).toBeUndefined();
  });

  it('by default boots when the launch does not fit the saved machine', () => {
    expect(chooseWarm(launch({ memory: '2G' }), { name: 't', warm })).toBeUndefined();
    expect(chooseWarm(launch({ cpus: '2' }), { name: 't', warm })).toBeUndefined();
    expect(chooseWarm(launch({ seed: 'http' }), { name: 't', warm })).toBeUndefined();
    expect(chooseWarm(launch({ diskSize: '10G' }), { name: 't', warm })).toBeUndefined();
    expect(chooseWarm(launch({}), { name: 't', warm }, true)).toBeUndefined();
  });

  it('with --warm, refuses what does not fit, naming the field', () => {
    const refused = (extra: Parameters<typeof launch>[0], field: string, image: { name: string; warm?: WarmSource } = { name: 't', warm }) =>
      expect(() => chooseWarm(launch({ warm: true, ...extra }), image)).toThrow(expect.objectContaining({ code: 'INVALID', field }));
    refused({}, '--warm', { name: 't' });
    refused({ memory: '2G' }, '--memory');
    refused({ cpus: '2' }, '--cpus');
    refused({ accel: 'kvm' }, '--accel');
    refused({ seed: 'configdrive' }, '--seed');
    refused({ diskSize: '10G' }, '--disk-size');
    refused({ tuning: { diskCache: 'none' } }, 'tuning');
    expect(() => chooseWarm(launch({ warm: true }), { name: 't', warm }, true)).toThrow(expect.objectContaining({ code: 'INVALID', field: '--pool' }));
  });

  it('containers have no warm state', () => {
    expect(() => launch({ type: 'container', warm: true })).toThrow(expect.objectContaining({ field: '--warm' }));
  });
});

describe('modulesToSkip', () => {
  it("leaves out the modules whose result the template carries or that only print, unless the user-data configures them", () => {
    expect(modulesToSkip('#cloud-config\nhostname: w1\n')).toEqual(['growpart', 'resizefs', 'grub_dpkg', 'apt_configure', 'keys_to_console', 'ssh_authkey_fingerprints']);
    expect(modulesToSkip('#cloud-config\ngrowpart: {mode: auto}\napt: {preserve_sources_list: true}\n')).toEqual(['resizefs', 'grub_dpkg', 'keys_to_console', 'ssh_authkey_fingerprints']);
    expect(modulesToSkip('#cloud-config\nssh: {emit_keys_to_console: true}\nresize_rootfs: true\n')).toEqual(['growpart', 'grub_dpkg', 'apt_configure', 'ssh_authkey_fingerprints']);
    expect(modulesToSkip('#cloud-config\nauthkey_hash: sha512\n')).toEqual(['growpart', 'resizefs', 'grub_dpkg', 'apt_configure', 'keys_to_console']);
    expect(modulesToSkip('#cloud-config\nno_ssh_fingerprints: true\n')).toEqual(['growpart', 'resizefs', 'grub_dpkg', 'apt_configure']);
    expect(modulesToSkip('#!/bin/sh\necho hi\n')).toEqual(['growpart', 'resizefs', 'grub_dpkg', 'apt_configure', 'keys_to_console', 'ssh_authkey_fingerprints']);
    expect(modulesToSkip('Content-Type: multipart/mixed; boundary="x"\n')).toEqual([]);
  });
});
