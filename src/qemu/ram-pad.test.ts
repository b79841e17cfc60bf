import { describe, expect, it } from 'vitest';
import { TCG_RAM_PAD_KIB, hasTcgDirtyBitmapBug, ramPadNote, tcgRamPadKiB, unsafeLiveMove } from './ram-pad.ts';

describe('tcgRamPadKiB: 8 KiB more RAM per block under TCG with QEMU before 9.0, unless huge pages', () => {
  it('pads under TCG on QEMU 7.2 and 8.x (and an unknown version)', () => {
    for (const qemuVersion of ['7.2.22', '7.2.0', '8.2.2', '6.2.0', '']) expect(tcgRamPadKiB({ accel: 'tcg', qemuVersion, hugepages: false })).toBe(TCG_RAM_PAD_KIB);
    expect(TCG_RAM_PAD_KIB).toBe(8);
  });
  it('does not pad on QEMU 9.0 and later (fixed by 03bfc2188f06), under KVM, or with huge pages', () => {
    for (const qemuVersion of ['9.0.0', '9.2.1', '10.0.0']) expect(tcgRamPadKiB({ accel: 'tcg', qemuVersion, hugepages: false })).toBe(0);
    expect(tcgRamPadKiB({ accel: 'kvm', qemuVersion: '7.2.22', hugepages: false })).toBe(0);
    expect(tcgRamPadKiB({ accel: 'tcg', qemuVersion: '7.2.22', hugepages: true })).toBe(0);
  });
  it('knows which releases have the bug', () => {
    expect(hasTcgDirtyBitmapBug('tcg', '8.9.99')).toBe(true);
    expect(hasTcgDirtyBitmapBug('tcg', '9.0.0')).toBe(false);
    expect(hasTcgDirtyBitmapBug('kvm', '7.2.22')).toBe(false);
  });
});

describe('unsafeLiveMove', () => {
  it('refuses an unpadded guest under TCG on QEMU < 9.0, saying why', () => {
    expect(unsafeLiveMove({ accel: 'tcg', qemuVersion: '7.2.22' })).toMatch(/TCG on QEMU 7\.2\.22 \(before 9\.0\).*loses the guest's writes during a live move/);
    expect(unsafeLiveMove({ accel: 'tcg', qemuVersion: '7.2.22', memoryPadKiB: 0 })).toBeDefined();
  });
  it('lets a padded guest, a KVM guest and any guest on QEMU 9.0+ move', () => {
    expect(unsafeLiveMove({ accel: 'tcg', qemuVersion: '7.2.22', memoryPadKiB: 8 })).toBeUndefined();
    expect(unsafeLiveMove({ accel: 'kvm', qemuVersion: '7.2.22' })).toBeUndefined();
    expect(unsafeLiveMove({ accel: 'tcg', qemuVersion: '9.1.0' })).toBeUndefined();
  });
});

describe('ramPadNote', () => {
  it('says what virtnode does on QEMU before 9.0, nothing after', () => {
    expect(ramPadNote('7.2.22')).toBe('before 9.0: VMs under TCG get 8 KiB more RAM per block, so that live moves keep what the guest writes');
    expect(ramPadNote('9.0.0')).toBeUndefined();
  });
});
