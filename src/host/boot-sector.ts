/**
 * The probe guest: one 512-byte MBR boot sector, x86 real-mode machine code written by hand. The BIOS loads it
 * at 0000:7c00 and jumps to it. It counts 16 × 65535 iterations in AX (a million real-mode instructions, a few
 * milliseconds on working hardware), derives the exit value from that count and writes it to QEMU's
 * `isa-debug-exit` port. QEMU then exits with status (value << 1) | 1. That status can only appear if the guest
 * really executed the whole loop: skipping it would give a different value, and a guest that never runs gives
 * no exit at all.
 */

/** I/O port of the `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`). */
export const DEBUG_EXIT_IOBASE = 0xf4;
/** The byte the guest writes after its loop. */
export const PROBE_EXIT_VALUE = 0x2a;
/** QEMU's exit status when the guest wrote PROBE_EXIT_VALUE: (0x2a << 1) | 1 = 85. */
export const PROBE_EXIT_STATUS = ((PROBE_EXIT_VALUE << 1) | 1) & 0xff;

const SECTOR_BYTES = 512;
const OUTER_LOOPS = 16;
/** AX after the loop: 16 × 65535 mod 65536 = 0xfff0, so AL = 0xf0; AL + 0x3a wraps to 0x2a. */
const AL_AFTER_LOOP = (OUTER_LOOPS * 0xffff) & 0xff;
const ADJUST = (PROBE_EXIT_VALUE - AL_AFTER_LOOP + 0x100) & 0xff;

const CODE: readonly number[] = [
  0x31, 0xc0, //                      xor  ax, ax
  0xba, OUTER_LOOPS, 0x00, //         mov  dx, 16
  0xb9, 0xff, 0xff, //          outer: mov  cx, 0xffff
  0x40, //                      inner: inc  ax
  0xe2, 0xfd, //                       loop inner          (-3)
  0x4a, //                             dec  dx
  0x75, 0xf7, //                       jnz  outer          (-9)
  0x04, ADJUST, //                     add  al, 0x3a       -> 0x2a only if the loop ran in full
  0xe6, DEBUG_EXIT_IOBASE, //          out  0xf4, al       -> QEMU exits with (al << 1) | 1
  0xfa, //                             cli
  0xf4, //                       halt: hlt
  0xeb, 0xfd, //                       jmp  halt           (-3)
];

/** The raw disk image: the code, zero padding, and the 0x55 0xaa boot signature in the last two bytes. */
export function probeBootSector(): Buffer {
  const sector = Buffer.alloc(SECTOR_BYTES);
  Buffer.from(CODE).copy(sector, 0);
  sector[SECTOR_BYTES - 2] = 0x55;
  sector[SECTOR_BYTES - 1] = 0xaa;
  return sector;
}
