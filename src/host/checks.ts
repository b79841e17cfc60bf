/**
 * One small pure function per host check: facts in, a PASS/WARN/FAIL line with a one-line fix hint out. The facts
 * are gathered elsewhere (host-facts.ts, kvm-probe.ts, programs.ts), so every verdict here is unit-testable.
 */
import { kvmUnusableReason } from './accelerator.ts';
import { hardwareVirtualization, hasFlag } from './cpuinfo.ts';
import type { CpuInfo } from './cpuinfo.ts';
import type { CgroupFacts, DeviceFacts, IommuFacts } from './host-facts.ts';
import type { KsmFacts, TuningHostFacts } from './tuning-facts.ts';
import { formatCpuList } from '../lib/cpu-list.ts';
import type { KvmProbe } from './kvm-probe.ts';
import type { ProgramState } from './programs.ts';

export type CheckStatus = 'PASS' | 'WARN' | 'FAIL';

export interface HostCheck {
  id: string;
  title: string;
  status: CheckStatus;
  detail: string;
  hint?: string;
}

const STATUS_RANK: Record<CheckStatus, number> = { PASS: 0, WARN: 1, FAIL: 2 };

export function worstStatus(checks: readonly HostCheck[]): CheckStatus {
  return checks.reduce<CheckStatus>((worst, c) => (STATUS_RANK[c.status] > STATUS_RANK[worst] ? c.status : worst), 'PASS');
}

function check(id: string, title: string, status: CheckStatus, detail: string, hint?: string): HostCheck {
  return hint === undefined || status === 'PASS' ? { id, title, status, detail } : { id, title, status, detail, hint };
}

/** ` (from FILE)` when the CPU facts come from a captured cpuinfo file rather than this host. */
function from(source: string | undefined): string {
  return source === undefined ? '' : ` (from ${source})`;
}

const KNOWN_VENDORS: Record<string, string> = {
  GenuineIntel: 'Intel',
  AuthenticAMD: 'AMD',
  HygonGenuine: 'Hygon',
};

export function checkCpuVendor(cpu: CpuInfo, source?: string): HostCheck {
  const title = 'CPU vendor and model';
  if (cpu.vendor === '') {
    return check('cpu.vendor', title, 'FAIL', `no vendor_id in cpuinfo${from(source)}`, 'check that /proc is mounted and this is an x86 machine');
  }
  const cpus = `${cpu.logicalCpus} logical CPU${cpu.logicalCpus === 1 ? '' : 's'}`;
  const detail = `${cpu.vendor}, ${cpu.model || 'unknown model'}, ${cpus}${from(source)}`;
  if (KNOWN_VENDORS[cpu.vendor] === undefined) {
    return check('cpu.vendor', title, 'WARN', detail, 'virtnode is tested on Intel and AMD x86_64 CPUs only');
  }
  return check('cpu.vendor', title, 'PASS', detail);
}

export function checkLongMode(cpu: CpuInfo, source?: string): HostCheck {
  const title = '64-bit CPU';
  if (hasFlag(cpu, 'lm')) return check('cpu.64bit', title, 'PASS', `lm flag present${from(source)}`);
  return check('cpu.64bit', title, 'FAIL', `no lm (long mode) flag${from(source)}`, 'virtnode needs an x86_64 (64-bit) host CPU');
}

export function checkHardwareVirt(cpu: CpuInfo, source?: string): HostCheck {
  const title = 'Hardware virtualization';
  const hw = hardwareVirtualization(cpu);
  if (hw === 'vmx') return check('cpu.hwvirt', title, 'PASS', `vmx (Intel VT-x)${from(source)}`);
  if (hw === 'svm') return check('cpu.hwvirt', title, 'PASS', `svm (AMD-V)${from(source)}`);
  return check(
    'cpu.hwvirt',
    title,
    'WARN',
    `no vmx/svm flag${from(source)}; KVM cannot accelerate guests, TCG (software emulation) still works`,
    'enable VT-x/AMD-V in the firmware setup, or nested virtualization on the outer hypervisor',
  );
}

export function checkKvmDevice(kvm: DeviceFacts): HostCheck {
  const title = 'KVM device';
  if (kvm.exists) return check('kvm.device', title, 'PASS', `${kvm.path} is present`);
  return check(
    'kvm.device',
    title,
    'WARN',
    `${kvm.path} is absent; guests will run under TCG (software emulation, slower)`,
    'load the module: modprobe kvm_intel (Intel) or modprobe kvm_amd (AMD)',
  );
}

export function checkKvmAccess(kvm: DeviceFacts): HostCheck {
  const title = 'KVM device access';
  if (!kvm.exists) return check('kvm.access', title, 'WARN', `not checked: ${kvm.path} is absent`, 'see the KVM device check');
  if (kvm.openError === undefined) return check('kvm.access', title, 'PASS', `${kvm.path} opens read/write`);
  return check('kvm.access', title, 'WARN', `cannot open ${kvm.path} read/write (${kvm.openError})`, kvmOpenHint(kvm.openError));
}

/** A permission problem has a user fix; a device node with no driver behind it needs the kvm module. */
function kvmOpenHint(openError: string): string {
  if (openError === 'EACCES' || openError === 'EPERM') return 'add the user to the kvm group (usermod -aG kvm USER) and log in again';
  if (openError === 'ENODEV' || openError === 'ENXIO') return 'no kvm driver answers this device: load the module (modprobe kvm_intel or kvm_amd)';
  return 'see the QEMU message in the KVM runs guests check';
}

export function checkKvmFunctional(probe: KvmProbe): HostCheck {
  const title = 'KVM runs guests';
  const cachedNote = probe.cached ? ` (cached verdict from ${probe.probedAt})` : '';
  const unusable = kvmUnusableReason(probe);
  if (unusable === undefined) return check('kvm.functional', title, 'PASS', `${probe.detail}${cachedNote}`);
  if (probe.verdict === 'absent') {
    return check('kvm.functional', title, 'WARN', `not checked: ${unusable}; TCG will be used`, 'see the KVM device check');
  }
  const what = probe.verdict === 'hangs' ? 'KVM is present but does not run guests' : 'KVM is present but QEMU cannot use it';
  return check(
    'kvm.functional',
    title,
    'WARN',
    `${what}: ${probe.detail}${cachedNote}; TCG (software emulation, slower) will be used`,
    probe.verdict === 'hangs'
      ? 'nothing to do for TCG; for KVM fix virtualization on the outer hypervisor, then run `virtnode host check --refresh`'
      : 'check the QEMU message above and the kvm module (dmesg); TCG works meanwhile',
  );
}

export function checkTun(dev: DeviceFacts): HostCheck {
  const title = 'TUN/TAP device';
  if (!dev.exists) {
    return check('dev.tun', title, 'WARN', `${dev.path} is absent; only user-mode networking will work`, 'modprobe tun');
  }
  if (dev.openError !== undefined) {
    return check('dev.tun', title, 'WARN', `cannot open ${dev.path} read/write (${dev.openError})`, 'run virtnode as root for tap networking');
  }
  return check('dev.tun', title, 'PASS', `${dev.path} is present and opens read/write`);
}

export function checkVhostNet(dev: DeviceFacts): HostCheck {
  const title = 'vhost-net device';
  if (!dev.exists) {
    return check('dev.vhost-net', title, 'WARN', `${dev.path} is absent; virtio networking will be slower`, 'modprobe vhost_net');
  }
  if (dev.openError !== undefined) {
    return check('dev.vhost-net', title, 'WARN', `cannot open ${dev.path} read/write (${dev.openError})`, 'run virtnode as root for vhost-net');
  }
  return check('dev.vhost-net', title, 'PASS', `${dev.path} is present and opens read/write`);
}

/** The controllers virtnode uses to limit guests: the v1 name, and the v2 name where it differs. */
const WANTED_CONTROLLERS: ReadonlyArray<{ label: string; v1: string; v2: string }> = [
  { label: 'cpu', v1: 'cpu', v2: 'cpu' },
  { label: 'memory', v1: 'memory', v2: 'memory' },
  { label: 'pids', v1: 'pids', v2: 'pids' },
  { label: 'blkio/io', v1: 'blkio', v2: 'io' },
];

export function checkCgroups(facts: CgroupFacts): HostCheck {
  const title = 'cgroup controllers';
  const found: string[] = [];
  const missing: string[] = [];
  for (const w of WANTED_CONTROLLERS) {
    if (facts.v2Controllers.includes(w.v2)) found.push(`${w.v2} (v2)`);
    else if (facts.v1Controllers.includes(w.v1)) found.push(`${w.v1} (v1)`);
    else missing.push(w.label);
  }
  const v2 =
    facts.v2Mount === undefined
      ? 'no cgroup2 mount'
      : `cgroup2 at ${facts.v2Mount} with ${facts.v2Controllers.length > 0 ? facts.v2Controllers.join(' ') : 'no controllers'}`;
  const detail = `${found.length > 0 ? found.join(', ') : 'none of cpu, memory, pids, blkio/io'}; ${v2}`;
  if (missing.length === 0) return check('cgroups', title, 'PASS', detail);
  return check(
    'cgroups',
    title,
    'WARN',
    `missing ${missing.join(', ')}; ${detail}; guest CPU/memory/IO limits will not be enforced`,
    'mount the controllers (cgroup v1) or enable them in cgroup.subtree_control (cgroup v2)',
  );
}

export function checkIommu(facts: IommuFacts, vendor: string): HostCheck {
  const title = 'IOMMU';
  if (facts.groups > 0) {
    return check('iommu', title, 'PASS', `${facts.groups} IOMMU group${facts.groups === 1 ? '' : 's'} in /sys/kernel/iommu_groups`);
  }
  const hint =
    vendor === 'AuthenticAMD'
      ? 'enable AMD-Vi (IOMMU) in the firmware setup; the kernel then enables it by default (amd_iommu=off disables it)'
      : 'enable VT-d in the firmware setup and boot the kernel with intel_iommu=on';
  if (facts.units.length > 0 || facts.acpiTables.length > 0) {
    const seen = [...facts.acpiTables.map((t) => `ACPI ${t}`), ...facts.units].join(', ');
    return check('iommu', title, 'WARN', `IOMMU hardware found (${seen}) but no IOMMU groups; PCI passthrough unavailable`, hint);
  }
  return check(
    'iommu',
    title,
    'WARN',
    'no IOMMU groups, no DMAR/AMD-Vi; PCI passthrough unavailable (not needed for ordinary guests)',
    hint,
  );
}

function checkProgram(id: string, title: string, state: ProgramState, pkg: string): HostCheck {
  if (state.state === 'ok') return check(id, title, 'PASS', `${state.version} (${state.path})`);
  if (state.state === 'missing') return check(id, title, 'FAIL', `${state.name} is not installed`, `apt-get install ${pkg}`);
  return check(id, title, 'FAIL', `${state.path} does not work: ${state.detail}`, `reinstall it: apt-get install --reinstall ${pkg}`);
}

export function checkQemu(state: ProgramState): HostCheck {
  return checkProgram('qemu', 'QEMU', state, 'qemu-system-x86');
}

export function checkQemuImg(state: ProgramState): HostCheck {
  return checkProgram('qemu-img', 'qemu-img', state, 'qemu-utils');
}

export function checkSeabios(files: readonly string[]): HostCheck {
  const title = 'SeaBIOS firmware';
  if (files.length > 0) return check('firmware.seabios', title, 'PASS', files.join(', '));
  return check('firmware.seabios', title, 'WARN', 'no /usr/share/seabios/bios.bin or bios-256k.bin', 'apt-get install seabios');
}

export function checkOvmf(files: readonly string[]): HostCheck {
  const title = 'OVMF (UEFI) firmware';
  // Name the plain build first (OVMF_CODE.fd before the .ms/.secboot variants) and count the rest.
  const sorted = [...files].sort((a, b) => a.length - b.length || a.localeCompare(b));
  if (sorted[0] !== undefined) {
    return check('firmware.ovmf', title, 'PASS', `${sorted[0]}${sorted.length > 1 ? ` (+${sorted.length - 1} more)` : ''}`);
  }
  return check('firmware.ovmf', title, 'WARN', 'no /usr/share/OVMF/OVMF_CODE*.fd; UEFI guests cannot boot', 'apt-get install ovmf');
}

/** KSM merges identical pages between guests: more guests per GiB, some CPU spent scanning. Reported, not judged. */
export function checkKsm(facts: KsmFacts): HostCheck {
  const title = 'KSM (same-page merging)';
  if (facts.run === undefined) return check('tuning.ksm', title, 'PASS', 'not in this kernel (CONFIG_KSM)');
  if (facts.run === 1) return check('tuning.ksm', title, 'PASS', `on, ${facts.pagesSharing} pages shared`);
  return check('tuning.ksm', title, 'PASS', `off (echo 1 > /sys/kernel/mm/ksm/run merges identical guest pages)`);
}

/** What the tuning knobs can use here: CPUs to pin, huge pages, io_uring, CPU models. */
export function checkTuningSupport(facts: TuningHostFacts): HostCheck[] {
  const hp = facts.hugepages;
  const hugepages =
    hp.mount === undefined
      ? check('tuning.hugepages', 'Huge pages (--hugepages)', 'PASS', `${hp.free} free ${hp.pageSizeKiB} KiB pages; no hugetlbfs mounted (mount -t hugetlbfs hugetlbfs /dev/hugepages to use them)`)
      : check('tuning.hugepages', 'Huge pages (--hugepages)', 'PASS', `${hp.free} free ${hp.pageSizeKiB} KiB pages (${Math.floor((hp.free * hp.pageSizeKiB) / 1024)} MiB) at ${hp.mount}`);
  const models = facts.cpuModels === undefined ? 'QEMU could not be asked' : `${facts.cpuModels.length} QEMU CPU models`;
  return [
    hugepages,
    check('tuning.cpus', 'CPU pinning and models (--pin-vcpus, --cpu-model)', 'PASS', `online host CPUs ${formatCpuList(facts.onlineCpus)}; ${models}`),
    check(
      'tuning.disk-io',
      'Disk I/O modes (--disk-cache, --disk-aio)',
      'PASS',
      `io_uring ${facts.ioUring ? 'available' : 'disabled'}; direct I/O ${facts.directIo ? 'works' : 'does not work'} in the state directory`,
    ),
  ];
}

