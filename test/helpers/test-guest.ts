import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The line the test guest's /init prints on the serial console once it is ready (after the identity lines). */
export const TEST_GUEST_READY_MARKER = 'VIRTNODE-TEST-GUEST-READY';

/** The prompt of the test guest's shell on the serial console. */
export const TEST_GUEST_PROMPT = 'test-guest# ';

export interface TestGuest {
  /**
   * Kernel to pass to QEMU's -kernel: the decompressed ELF `vmlinux` (booted through its PVH entry, which skips
   * the kernel's own decompressor, about 3.5 s under TCG) when the build made one, else `vmlinuz`.
   */
  kernel: string;
  /** The Debian bzImage, as installed in /boot. */
  vmlinuz: string;
  initrd: string;
  /** Kernel command line (contents of the `cmdline` file, trimmed). */
  cmdline: string;
  dir: string;
}

const DEFAULT_DIR = fileURLToPath(new URL('../../.cache/test-guest', import.meta.url));

/**
 * Locates the tiny test guest built by scripts/build-test-guest.sh (env VIRTNODE_TEST_GUEST_DIR overrides the
 * default `<repo>/.cache/test-guest`; a benchmark may name another build's `dir`). Throws when it has not been
 * built: a test that needs it fails, never skips.
 */
export function testGuest(dir = process.env['VIRTNODE_TEST_GUEST_DIR'] || DEFAULT_DIR): TestGuest {
  const vmlinuz = join(dir, 'vmlinuz');
  const vmlinux = join(dir, 'vmlinux');
  const initrd = join(dir, 'initramfs.img');
  const cmdlineFile = join(dir, 'cmdline');
  const missing = [vmlinuz, initrd, cmdlineFile].filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(
      `test guest not built (missing ${missing.join(', ')}): run ./scripts/build-test-guest.sh` +
        (process.env['VIRTNODE_TEST_GUEST_DIR'] ? ` "${dir}"` : ''),
    );
  }
  const cmdline = readFileSync(cmdlineFile, 'utf8').trim();
  if (cmdline === '') throw new Error(`${cmdlineFile} is empty: run ./scripts/build-test-guest.sh again`);
  return { kernel: existsSync(vmlinux) ? vmlinux : vmlinuz, vmlinuz, initrd, cmdline, dir };
}
