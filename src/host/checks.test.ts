import { describe, expect, it } from 'vitest';
import {
  checkCgroups,
  checkCpuVendor,
  checkHardwareVirt,
  checkIommu,
  checkKvmAccess,
  checkKvmDevice,
  checkKvmFunctional,
  checkLongMode,
  checkOvmf,
  checkQemu,
  checkQemuImg,
  checkSeabios,
  checkTun,
  checkVhostNet,
  worstStatus,
} from './checks.ts';
import type { CpuInfo } from './cpuinfo.ts';
import type { KvmProbe } from './kvm-probe.ts';

const cpu = (flags: string[], vendor = 'GenuineIntel'): CpuInfo => ({ vendor, model: 'Test CPU', flags, logicalCpus: 4 });
const kvm = (verdict: KvmProbe['verdict'], detail: string, cached = false): KvmProbe => ({
  verdict,
  detail,
  elapsedMs: 3001,
  timeoutMs: 3000,
  cached,
  probedAt: '2025-01-01T00:00:00.000Z',
});

describe('CPU checks', () => {
  it('vendor and model, labelled with the file they came from', () => {
    expect(checkCpuVendor(cpu([]))).toEqual({
      id: 'cpu.vendor',
      title: 'CPU vendor and model',
      status: 'PASS',
      detail: 'GenuineIntel, Test CPU, 4 logical CPUs',
    });
    expect(checkCpuVendor(cpu([]), 'x.txt').detail).toBe('GenuineIntel, Test CPU, 4 logical CPUs (from x.txt)');
    expect(checkCpuVendor(cpu([], 'WeirdVendor')).status).toBe('WARN');
    expect(checkCpuVendor(cpu([], '')).status).toBe('FAIL');
  });

  it('64-bit needs lm', () => {
    expect(checkLongMode(cpu(['lm'])).status).toBe('PASS');
    const no = checkLongMode(cpu(['lahf_lm']), 'old.txt');
    expect(no.status).toBe('FAIL');
    expect(no.detail).toBe('no lm (long mode) flag (from old.txt)');
    expect(no.hint).toBeDefined();
  });

  it('hardware virtualization: PASS with vmx or svm, WARN (not FAIL) without', () => {
    expect(checkHardwareVirt(cpu(['vmx'])).detail).toBe('vmx (Intel VT-x)');
    expect(checkHardwareVirt(cpu(['svm'], 'AuthenticAMD')).detail).toBe('svm (AMD-V)');
    const none = checkHardwareVirt(cpu(['svm_lock']));
    expect(none.status).toBe('WARN');
    expect(none.detail).toContain('TCG (software emulation) still works');
  });
});

describe('KVM checks', () => {
  it('device presence and access', () => {
    expect(checkKvmDevice({ path: '/dev/kvm', exists: true }).status).toBe('PASS');
    expect(checkKvmDevice({ path: '/dev/kvm', exists: false }).hint).toContain('modprobe kvm_');
    expect(checkKvmAccess({ path: '/dev/kvm', exists: true }).status).toBe('PASS');
    const denied = checkKvmAccess({ path: '/dev/kvm', exists: true, openError: 'EACCES' });
    expect(denied.status).toBe('WARN');
    expect(denied.detail).toBe('cannot open /dev/kvm read/write (EACCES)');
    expect(denied.hint).toContain('kvm group');
    // A node with no driver behind it (a container's /dev, a module not loaded) is not a permission problem.
    const driverless = checkKvmAccess({ path: '/dev/kvm', exists: true, openError: 'ENODEV' });
    expect(driverless.detail).toBe('cannot open /dev/kvm read/write (ENODEV)');
    expect(driverless.hint).toMatch(/^no kvm driver answers this device: load the module/);
  });

  it('functional: says KVM is present but does not run guests and that TCG will be used', () => {
    const c = checkKvmFunctional(kvm('hangs', 'a test guest did not run under KVM within 3 s', true));
    expect(c.status).toBe('WARN');
    expect(c.detail).toBe(
      'KVM is present but does not run guests: a test guest did not run under KVM within 3 s (cached verdict from 2025-01-01T00:00:00.000Z); TCG (software emulation, slower) will be used',
    );
    expect(checkKvmFunctional(kvm('functional', 'a test guest ran under KVM and finished in 200 ms'))).toEqual({
      id: 'kvm.functional',
      title: 'KVM runs guests',
      status: 'PASS',
      detail: 'a test guest ran under KVM and finished in 200 ms',
    });
    expect(checkKvmFunctional(kvm('fails', 'QEMU exited')).detail).toContain('KVM is present but QEMU cannot use it');
    expect(checkKvmFunctional(kvm('absent', '/dev/kvm is absent')).status).toBe('WARN');
  });
});

describe('device, cgroup and IOMMU checks', () => {
  it('tun and vhost-net', () => {
    expect(checkTun({ path: '/dev/net/tun', exists: true }).status).toBe('PASS');
    expect(checkTun({ path: '/dev/net/tun', exists: false }).hint).toBe('modprobe tun');
    expect(checkVhostNet({ path: '/dev/vhost-net', exists: false })).toMatchObject({ status: 'WARN', hint: 'modprobe vhost_net' });
    expect(checkVhostNet({ path: '/dev/vhost-net', exists: true, openError: 'EACCES' }).status).toBe('WARN');
  });

  it('cgroups: v1 controllers with an empty cgroup2 (a hybrid host), v2 only, and missing ones', () => {
    const here = checkCgroups({
      v1Controllers: ['blkio', 'cpu', 'cpuacct', 'memory', 'pids'],
      v2Mount: '/sys/fs/cgroup/unified',
      v2Controllers: ['hugetlb'],
    });
    expect(here.status).toBe('PASS');
    expect(here.detail).toBe('cpu (v1), memory (v1), pids (v1), blkio (v1); cgroup2 at /sys/fs/cgroup/unified with hugetlb');
    const v2 = checkCgroups({ v1Controllers: [], v2Mount: '/sys/fs/cgroup', v2Controllers: ['cpu', 'io', 'memory', 'pids'] });
    expect(v2.detail).toBe('cpu (v2), memory (v2), pids (v2), io (v2); cgroup2 at /sys/fs/cgroup with cpu io memory pids');
    const missing = checkCgroups({ v1Controllers: ['cpu', 'memory'], v2Controllers: [] });
    expect(missing.status).toBe('WARN');
    expect(missing.detail).toMatch(/^missing pids, blkio\/io; /);
    expect(missing.detail).toContain('no cgroup2 mount');
  });

  it('IOMMU: groups PASS; none WARN with the kernel parameter hint', () => {
    expect(checkIommu({ groups: 12, units: ['dmar0'], acpiTables: ['DMAR'] }, 'GenuineIntel').status).toBe('PASS');
    const intel = checkIommu({ groups: 0, units: [], acpiTables: [] }, 'GenuineIntel');
    expect(intel.status).toBe('WARN');
    expect(intel.hint).toContain('intel_iommu=on');
    const dmar = checkIommu({ groups: 0, units: [], acpiTables: ['DMAR'] }, 'GenuineIntel');
    expect(dmar.detail).toContain('ACPI DMAR');
    expect(checkIommu({ groups: 0, units: [], acpiTables: [] }, 'AuthenticAMD').hint).toContain('AMD-Vi');
  });
});

describe('program and firmware checks', () => {
  it('QEMU and qemu-img: version on PASS, the Debian package on FAIL', () => {
    expect(checkQemu({ state: 'ok', path: '/usr/bin/qemu-system-x86_64', version: '7.2.22', line: '' }).detail).toBe(
      '7.2.22 (/usr/bin/qemu-system-x86_64)',
    );
    expect(checkQemu({ state: 'missing', name: 'qemu-system-x86_64' })).toMatchObject({
      status: 'FAIL',
      hint: 'apt-get install qemu-system-x86',
    });
    expect(checkQemuImg({ state: 'missing', name: 'qemu-img' }).hint).toBe('apt-get install qemu-utils');
    expect(checkQemuImg({ state: 'broken', path: '/usr/bin/qemu-img', detail: 'exit 127' }).status).toBe('FAIL');
  });

  it('firmware: WARN with the package name when missing', () => {
    expect(checkSeabios(['/usr/share/seabios/bios-256k.bin']).status).toBe('PASS');
    expect(checkSeabios([])).toMatchObject({ status: 'WARN', hint: 'apt-get install seabios' });
    expect(checkOvmf(['/o/OVMF_CODE_4M.ms.fd', '/o/OVMF_CODE.fd']).detail).toBe('/o/OVMF_CODE.fd (+1 more)');
    expect(checkOvmf([])).toMatchObject({ status: 'WARN', hint: 'apt-get install ovmf' });
  });

  it('worstStatus', () => {
    const pass = checkSeabios(['x']);
    const warn = checkSeabios([]);
    const fail = checkQemu({ state: 'missing', name: 'q' });
    expect(worstStatus([pass, pass])).toBe('PASS');
    expect(worstStatus([pass, warn])).toBe('WARN');
    expect(worstStatus([fail, warn, pass])).toBe('FAIL');
  });
});
