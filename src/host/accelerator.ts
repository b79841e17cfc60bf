import { VirtnodeError } from '../lib/errors.ts';
import { DEFAULT_PROBE_TIMEOUT_MS, KVM_DEVICE, formatSeconds, probeKvm } from './kvm-probe.ts';
import type { Accel, KvmProbe, KvmProbeTarget } from './kvm-probe.ts';

export type AccelRequest = 'auto' | Accel;

export interface AcceleratorChoice {
  accel: Accel;
  reason: string;
}

const TCG_FALLBACK = 'using TCG (software emulation, slower)';
const KVM_HINT = 'use --accel tcg';

/** Why KVM cannot be used, as a clause; undefined when it can. */
export function kvmUnusableReason(probe: Pick<KvmProbe, 'verdict' | 'detail' | 'timeoutMs'>): string | undefined {
  switch (probe.verdict) {
    case 'functional':
      return undefined;
    case 'absent':
      return `${KVM_DEVICE} is absent`;
    case 'hangs':
      return `${KVM_DEVICE} is present but a test guest did not run under KVM within ${formatSeconds(probe.timeoutMs)}`;
    case 'fails':
      return `${KVM_DEVICE} is present but QEMU could not run a guest with it (${probe.detail})`;
  }
}

/**
 * Pure: the accelerator for a request, given the KVM probe verdict. KVM only when the probe saw a guest run.
 * An explicit 'kvm' request on a host where it does not work is HOST_UNSUPPORTED, never a silent fallback.
 */
export function chooseAccelerator(
  requested: AccelRequest,
  probe: Pick<KvmProbe, 'verdict' | 'detail' | 'timeoutMs' | 'elapsedMs'> | undefined,
): AcceleratorChoice {
  if (requested === 'tcg') return { accel: 'tcg', reason: 'TCG (software emulation) was requested' };
  if (probe === undefined) throw new VirtnodeError('INTERNAL', `accelerator '${requested}' needs a KVM probe result`);
  const unusable = kvmUnusableReason(probe);
  if (unusable === undefined) {
    return {
      accel: 'kvm',
      reason: `a test guest ran under KVM in ${probe.elapsedMs} ms; using KVM (hardware virtualization)`,
    };
  }
  if (requested === 'kvm') {
    throw new VirtnodeError('HOST_UNSUPPORTED', `cannot use KVM as requested: ${unusable}`, { hint: KVM_HINT });
  }
  return { accel: 'tcg', reason: `${unusable}; ${TCG_FALLBACK}` };
}

/**
 * Called by every VM start: fast (a few stat() and small file reads) once the probe verdict is cached.
 */
export async function resolveAccelerator(
  requested: AccelRequest,
  options: { cacheDir: string; signal?: AbortSignal; probeTimeoutMs?: number } & KvmProbeTarget,
): Promise<AcceleratorChoice> {
  if (requested === 'tcg') return chooseAccelerator('tcg', undefined);
  const probe = await probeKvm({
    cacheDir: options.cacheDir,
    timeoutMs: options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
    ...(options.kvmDevice === undefined ? {} : { kvmDevice: options.kvmDevice }),
    ...(options.qemu === undefined ? {} : { qemu: options.qemu }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  return chooseAccelerator(requested, probe);
}
