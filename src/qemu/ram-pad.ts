/**
 * QEMU before 9.0 under TCG loses what the guest writes during a live move when a RAM block's offset and size are
 * multiples of 256 KiB (64 target pages): it syncs that block's migration dirty bitmap on a fast path that clears
 * the bits without resetting the TCG TLB's not-dirty flags, so a vCPU holding a writable TLB entry writes the page
 * without marking it dirty again, and the target gets a stale page (fixed upstream by 03bfc2188f06, "physmem: Fix
 * migration dirty bitmap coherency with TCG memory access"). Any other size takes the page-by-page path, which is
 * correct. virtnode's memory sizes are whole MiB, so it gives each guest RAM block 8 KiB more there (QEMU rounds RAM
 * to 8 KiB: the smallest step). This module decides it, and what a live move refuses without it.
 */
import type { Accel, InstanceRuntime } from '../instances/model.ts';

/** What each guest RAM block gets beyond its configured size where the bug applies. */
export const TCG_RAM_PAD_KIB = 8;

/** The QEMU release where the dirty bitmap's fast path was fixed. */
const FIXED_IN = { major: 9, minor: 0 };

/** Whether `accel` on QEMU `version` (`7.2.22`) has the bug; an unknown version counts as affected. */
export function hasTcgDirtyBitmapBug(accel: Accel, version: string): boolean {
  if (accel !== 'tcg') return false;
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (m === null) return true;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major < FIXED_IN.major || (major === FIXED_IN.major && minor < FIXED_IN.minor);
}

/**
 * The padding of a start: TCG_RAM_PAD_KIB under TCG on QEMU before 9.0, else 0. Not with huge pages: their
 * backend's size must be a whole number of huge pages (such a guest is refused a live move there instead).
 */
export function tcgRamPadKiB(facts: { accel: Accel; qemuVersion: string; hugepages: boolean }): number {
  return facts.hugepages || !hasTcgDirtyBitmapBug(facts.accel, facts.qemuVersion) ? 0 : TCG_RAM_PAD_KIB;
}

/**
 * Why a live move would lose the guest's writes (its QEMU has the bug and its RAM blocks are whole multiples of
 * 256 KiB: not padded), or undefined when it is safe.
 */
export function unsafeLiveMove(layout: InstanceRuntime): string | undefined {
  if (!hasTcgDirtyBitmapBug(layout.accel, layout.qemuVersion)) return undefined;
  if ((layout.memoryPadKiB ?? 0) % 256 !== 0) return undefined;
  return `it runs under TCG on QEMU ${layout.qemuVersion || '(unknown version)'} (before 9.0) with memory in whole multiples of 256 KiB, where QEMU loses the guest's writes during a live move`;
}

/** For `virtnode host check`'s QEMU line: what virtnode does about the bug on this QEMU, or undefined (9.0+). */
export function ramPadNote(qemuVersion: string): string | undefined {
  if (!hasTcgDirtyBitmapBug('tcg', qemuVersion)) return undefined;
  return `before 9.0: VMs under TCG get ${TCG_RAM_PAD_KIB} KiB more RAM per block, so that live moves keep what the guest writes`;
}
