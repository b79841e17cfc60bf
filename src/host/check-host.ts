import { constants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { VirtnodeError } from '../lib/errors.ts';
import { chooseAccelerator } from './accelerator.ts';
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
  checkKsm,
  checkTuningSupport,
  worstStatus,
} from './checks.ts';
import type { CheckStatus, HostCheck } from './checks.ts';
import { parseCpuinfo } from './cpuinfo.ts';
import type { CpuInfo } from './cpuinfo.ts';
import { cgroupFacts, deviceFacts, firmwareFacts, iommuFacts } from './host-facts.ts';
import { DEFAULT_PROBE_TIMEOUT_MS, KVM_DEVICE, QEMU_SYSTEM, probeKvm } from './kvm-probe.ts';
import type { Accel, KvmProbe, KvmProbeTarget } from './kvm-probe.ts';
import { programVersion } from './programs.ts';
import { ksmFacts, tuningHostFacts } from './tuning-facts.ts';

const PROC_CPUINFO = '/proc/cpuinfo';

export interface HostReport {
  /** The worst status of all checks. */
  status: CheckStatus;
  checks: HostCheck[];
  cpu: CpuInfo & { source: string };
  accelerator: { chosen: Accel; reason: string };
  kvm: KvmProbe;
  qemu: { version?: string; path?: string; imgVersion?: string };
  kernel: { release: string };
  firmware: { seabios: string[]; ovmf: string[] };
  durationMs: number;
}

/** `kvmDevice` and `qemu` (tests only) stand in for /dev/kvm and QEMU in the KVM, QEMU and probe checks. */
export interface CheckHostOptions extends KvmProbeTarget {
  /** Judge the CPU from this captured cpuinfo file instead of /proc/cpuinfo; device checks still describe this host. */
  cpuinfoPath?: string;
  /** Where the probe verdict and program versions are cached. */
  cacheDir: string;
  /** The state directory: whether its filesystem takes direct I/O is reported (default: the cache directory). */
  stateDir?: string;
  signal?: AbortSignal;
  probeTimeoutMs?: number;
  /** Boot the KVM test guest again and re-read program versions, ignoring the cache. */
  refreshProbe?: boolean;
}

/** A captured /proc/cpuinfo is a few KiB per CPU: anything past this is not one (`/dev/zero` never ends). */
export const MAX_CPUINFO_BYTES = 4 * 1024 * 1024;

async function readCpuinfo(path: string | undefined): Promise<string> {
  if (path === undefined) {
    try {
      return await readFile(PROC_CPUINFO, 'utf8');
    } catch (e) {
      throw new VirtnodeError('HOST_UNSUPPORTED', `cannot read ${PROC_CPUINFO}`, { hint: 'mount /proc', cause: e });
    }
  }
  return readCapturedCpuinfo(path);
}

/**
 * A cpuinfo file named by a caller: a regular file (not a device, FIFO or directory: a read of those may never
 * end), read up to MAX_CPUINFO_BYTES. Files under /proc report size 0, so the limit is on what is read.
 */
export async function readCapturedCpuinfo(path: string): Promise<string> {
  const hint = 'give a readable file captured from /proc/cpuinfo';
  let handle;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new VirtnodeError('NOT_FOUND', `cannot read cpuinfo file ${path}`, { field: '--cpuinfo', hint, cause: e });
  }
  try {
    if (!(await handle.stat()).isFile()) throw new VirtnodeError('INVALID', `--cpuinfo: ${path} is not a regular file`, { field: '--cpuinfo', hint });
    const buffer = Buffer.alloc(MAX_CPUINFO_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_CPUINFO_BYTES) throw new VirtnodeError('INVALID', `--cpuinfo: ${path} is larger than ${MAX_CPUINFO_BYTES} bytes: not a captured cpuinfo`, { field: '--cpuinfo', hint });
    }
    return buffer.toString('utf8', 0, length);
  } catch (e) {
    if (e instanceof VirtnodeError) throw e;
    throw new VirtnodeError('NOT_FOUND', `cannot read cpuinfo file ${path}`, { field: '--cpuinfo', hint, cause: e });
  } finally {
    await handle.close();
  }
}

/** The whole host check, in the spirit of virt-host-validate. Never throws for a missing feature: it reports it. */
export async function checkHost(options: CheckHostOptions): Promise<HostReport> {
  const started = performance.now();
  const signalOption = options.signal === undefined ? {} : { signal: options.signal };
  const refresh = options.refreshProbe === true;
  const cpuText = await readCpuinfo(options.cpuinfoPath);
  const cpu = parseCpuinfo(cpuText);
  const source = options.cpuinfoPath;

  // Program versions first and one after the other: they share one cache file.
  const qemu = await programVersion(options.qemu ?? QEMU_SYSTEM, { cacheDir: options.cacheDir, refresh, ...signalOption });
  const qemuImg = await programVersion('qemu-img', { cacheDir: options.cacheDir, refresh, ...signalOption });

  const [kvmDev, tun, vhost, cgroups, iommu, firmware, kvm] = await Promise.all([
    deviceFacts(options.kvmDevice ?? KVM_DEVICE),
    deviceFacts('/dev/net/tun'),
    deviceFacts('/dev/vhost-net'),
    cgroupFacts(),
    iommuFacts(),
    firmwareFacts(),
    probeKvm({
      cacheDir: options.cacheDir,
      timeoutMs: options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
      refresh,
      ...(options.kvmDevice === undefined ? {} : { kvmDevice: options.kvmDevice }),
      ...(options.qemu === undefined ? {} : { qemu: options.qemu }),
      ...signalOption,
    }),
  ]);

  const checks: HostCheck[] = [
    checkCpuVendor(cpu, source),
    checkLongMode(cpu, source),
    checkHardwareVirt(cpu, source),
    checkKvmDevice(kvmDev),
    checkKvmAccess(kvmDev),
    checkKvmFunctional(kvm),
    checkTun(tun),
    checkVhostNet(vhost),
    checkCgroups(cgroups),
    // The IOMMU hint names a kernel parameter for this host's vendor, so it reads this host's cpuinfo.
    checkIommu(iommu, source === undefined ? cpu.vendor : parseCpuinfo(await readCpuinfo(undefined)).vendor),
    checkQemu(qemu),
    checkQemuImg(qemuImg),
    checkSeabios(firmware.seabios),
    checkOvmf(firmware.ovmf),
    checkKsm(ksmFacts()),
    ...checkTuningSupport(await tuningHostFacts(options.stateDir ?? options.cacheDir)),
  ];

  const choice = chooseAccelerator('auto', kvm);
  const qemuInfo: HostReport['qemu'] = {};
  if (qemu.state === 'ok') {
    qemuInfo.version = qemu.version;
    qemuInfo.path = qemu.path;
  }
  if (qemuImg.state === 'ok') qemuInfo.imgVersion = qemuImg.version;

  return {
    status: worstStatus(checks),
    checks,
    cpu: { ...cpu, source: source ?? PROC_CPUINFO },
    accelerator: { chosen: choice.accel, reason: choice.reason },
    kvm,
    qemu: qemuInfo,
    kernel: { release: release() },
    firmware,
    durationMs: Math.round(performance.now() - started),
  };
}
