import { ONE_PROCESS_CLOUD_INIT_FLAG } from '../images/boot/extlinux.ts';
import type { Accel } from './model.ts';

/**
 * Drivers a guest under software emulation (TCG) loads at every boot for emulated hardware it does not use. Each
 * load costs 0.2-0.7 s of guest CPU under TCG (a few milliseconds under KVM), and udev loads them one after the
 * other while cloud-init is starting: nested virtualization (`-cpu max` shows SVM/VMX; KVM inside a TCG guest is
 * unusably slow), the VGA's DRM driver (the text console stays; switching it to a framebuffer took 2 s), the PC
 * speaker, the chipset's watchdog, SMBus and LPC drivers, q35's built-in SATA controller (virtnode attaches no SATA
 * device; its six ports were probed and their 31 devices coldplugged at each boot), and the kernel's SIMD crypto
 * drivers (nothing at boot uses kernel crypto; the generic code stays).
 */
export const TCG_UNUSED_DRIVERS = [
  'kvm',
  'kvm_amd',
  'kvm_intel',
  'bochs',
  'ahci',
  'pcspkr',
  'iTCO_wdt',
  'i2c_i801',
  'lpc_ich',
  'serio_raw',
  'powernow_k8',
  'aesni_intel',
  'ghash_clmulni_intel',
  'crc32_pclmul',
  'sha1_ssse3',
  'sha256_ssse3',
  'sha512_ssse3',
] as const;

/**
 * Speculative-execution mitigations off: an emulated CPU does not speculate, so retpolines, return-stack filling
 * and the other mitigations protect nothing under TCG and only add work to every indirect call and context switch.
 */
export const TCG_KERNEL_ARGS = ['mitigations=off'] as const;

/**
 * The kernel command line of a direct boot for this start: under TCG, an image's command line (the one virtnode
 * composed, marked by ONE_PROCESS_CLOUD_INIT_FLAG) also tells kmod not to load TCG_UNUSED_DRIVERS by alias (udev's
 * coldplug; `modprobe NAME` still loads one) and gets TCG_KERNEL_ARGS. A command line the user wrote, and every KVM
 * boot, is left as it is.
 */
export function bootCmdlineFor(cmdline: string, accel: Accel): string {
  const words = cmdline.split(/\s+/).filter((w) => w !== '');
  if (accel !== 'tcg' || !words.includes(ONE_PROCESS_CLOUD_INIT_FLAG)) return cmdline;
  const added = [...TCG_KERNEL_ARGS, `modprobe.blacklist=${TCG_UNUSED_DRIVERS.join(',')}`].filter((arg) => !words.some((w) => w.split('=')[0] === arg.split('=')[0]));
  return [...words, ...added].join(' ');
}
