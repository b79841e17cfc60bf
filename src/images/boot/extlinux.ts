/**
 * The boot entry of an EXTLINUX/SYSLINUX configuration (what the image's own boot loader would boot): the
 * DEFAULT label's LINUX (or KERNEL), INITRD and APPEND, with paths made absolute in the filesystem.
 */
export interface BootEntry {
  kernel: string;
  initrd: string | undefined;
  append: string;
}

/** Where EXTLINUX looks for its configuration, in its own order, as paths inside the root filesystem. */
export const EXTLINUX_CONFIG_PATHS = ['/boot/extlinux/extlinux.conf', '/extlinux.conf', '/boot/syslinux/syslinux.cfg', '/syslinux.cfg'] as const;

/** Paths read out of the image are passed to debugfs: only plain characters, no quoting games. */
const SAFE_PATH = /^\/[A-Za-z0-9._+\-/]+$/;

function absolute(path: string, configDir: string): string {
  const joined = path.startsWith('/') ? path : `${configDir}/${path}`;
  const parts: string[] = [];
  for (const part of joined.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}

/**
 * Parses `text` (read from `configPath`). Undefined when there is no bootable entry virtnode can reproduce: no
 * kernel, several initrds, a COM32 module or chain loader, no `root=`, or a path with unusual characters.
 */
export function parseExtlinux(text: string, configPath: string): BootEntry | undefined {
  const configDir = configPath.slice(0, configPath.lastIndexOf('/')) || '/';
  let defaultLabel: string | undefined;
  const entries: Array<{ label: string; kernel?: string; initrd?: string; append?: string }> = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (m === null) continue;
    const keyword = m[1]!.toUpperCase();
    const value = m[2]!.trim();
    if (keyword === 'DEFAULT') defaultLabel = value;
    else if (keyword === 'LABEL') entries.push({ label: value });
    else {
      const entry = entries.at(-1);
      if (entry === undefined) continue; // global APPEND and the like: not used by the entries below
      if (keyword === 'LINUX' || keyword === 'KERNEL') entry.kernel = value;
      else if (keyword === 'INITRD') entry.initrd = value;
      else if (keyword === 'APPEND') entry.append = value;
    }
  }
  const chosen = entries.find((e) => e.label === defaultLabel) ?? entries[0];
  if (chosen?.kernel === undefined || /\.c32$/i.test(chosen.kernel)) return undefined;
  if (chosen.initrd !== undefined && chosen.initrd.includes(',')) return undefined;
  const append = chosen.append ?? '';
  if (!/(^|\s)root=\S/.test(append)) return undefined;
  const kernel = absolute(chosen.kernel, configDir);
  const initrd = chosen.initrd === undefined ? undefined : absolute(chosen.initrd, configDir);
  if (!SAFE_PATH.test(kernel) || (initrd !== undefined && !SAFE_PATH.test(initrd))) return undefined;
  return { kernel, initrd, append };
}

/**
 * Tells an image virtnode built that virtnode boots it (directly, with this command line): its units then run
 * cloud-init's stages in one Python process (src/instances/cold-first-boot.py) instead of one per unit. Booted
 * by its own boot loader (EXTLINUX's APPEND has no such word) the image runs cloud-init's units as always. Any
 * other kernel ignores it (a word with a dot is a module parameter, and no module is called `virtnode`).
 */
export const ONE_PROCESS_CLOUD_INIT_FLAG = 'virtnode.cloud_init=one_process';

/**
 * The kernel command line for a direct boot: the entry's own, with the serial console virtnode logs and
 * ONE_PROCESS_CLOUD_INIT_FLAG.
 */
export function directBootCmdline(append: string): string {
  const words = append.split(/\s+/).filter((w) => w !== '' && !w.startsWith('initrd=') && w !== 'BOOT_IMAGE');
  if (!words.some((w) => w.startsWith('console=ttyS0'))) words.push('console=ttyS0,115200n8');
  if (!words.includes(ONE_PROCESS_CLOUD_INIT_FLAG)) words.push(ONE_PROCESS_CLOUD_INIT_FLAG);
  return words.join(' ');
}
