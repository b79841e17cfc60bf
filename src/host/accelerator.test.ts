import { describe, expect, it } from 'vitest';
import { VirtnodeError } from '../lib/errors.ts';
import { chooseAccelerator, kvmUnusableReason } from './accelerator.ts';
import type { KvmProbe } from './kvm-probe.ts';

const probe = (verdict: KvmProbe['verdict'], detail = ''): Pick<KvmProbe, 'verdict' | 'detail' | 'timeoutMs' | 'elapsedMs'> => ({
  verdict,
  detail,
  timeoutMs: 3000,
  elapsedMs: verdict === 'hangs' ? 3001 : 180,
});

describe('chooseAccelerator', () => {
  it('chooses kvm only when the probe saw a guest run', () => {
    expect(chooseAccelerator('auto', probe('functional')).accel).toBe('kvm');
    expect(chooseAccelerator('kvm', probe('functional'))).toEqual({
      accel: 'kvm',
      reason: 'a test guest ran under KVM in 180 ms; using KVM (hardware virtualization)',
    });
    for (const v of ['hangs', 'fails', 'absent'] as const) expect(chooseAccelerator('auto', probe(v)).accel).toBe('tcg');
  });

  it('explains a hanging KVM the way users read it', () => {
    expect(chooseAccelerator('auto', probe('hangs')).reason).toBe(
      '/dev/kvm is present but a test guest did not run under KVM within 3 s; using TCG (software emulation, slower)',
    );
    expect(chooseAccelerator('auto', probe('absent')).reason).toBe('/dev/kvm is absent; using TCG (software emulation, slower)');
    expect(chooseAccelerator('auto', probe('fails', 'QEMU exited with status 1 under KVM: Permission denied')).reason).toBe(
      '/dev/kvm is present but QEMU could not run a guest with it (QEMU exited with status 1 under KVM: Permission denied); using TCG (software emulation, slower)',
    );
  });

  it('refuses an explicit kvm request that cannot work, with the reason and the hint', () => {
    for (const v of ['hangs', 'fails', 'absent'] as const) {
      let caught: unknown;
      try {
        chooseAccelerator('kvm', probe(v, 'boom'));
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(VirtnodeError);
      const err = caught as VirtnodeError;
      expect(err.code).toBe('HOST_UNSUPPORTED');
      expect(err.hint).toBe('use --accel tcg');
      expect(err.message).toContain(kvmUnusableReason(probe(v, 'boom')) ?? 'unreachable');
    }
  });

  it('takes tcg when asked without needing a probe', () => {
    expect(chooseAccelerator('tcg', undefined)).toEqual({ accel: 'tcg', reason: 'TCG (software emulation) was requested' });
    expect(chooseAccelerator('tcg', probe('functional')).accel).toBe('tcg');
    expect(() => chooseAccelerator('auto', undefined)).toThrow(VirtnodeError);
  });
});
