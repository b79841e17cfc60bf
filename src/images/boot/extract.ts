import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { run } from '../../exec/run.ts';
import { linuxPartition } from '../rootfs.ts';
import { directBootCmdline, EXTLINUX_CONFIG_PATHS, parseExtlinux } from './extlinux.ts';

/**
 * An image's own kernel and initramfs, read out of its root filesystem when it is stored, so instances can boot
 * them directly (`-kernel/-initrd/-append`): no firmware disk boot, no boot loader reading the kernel through
 * BIOS calls, which under TCG costs seconds. Kept next to the image as `<sha256>.boot/` (content-addressed like
 * the image: every name of the same file shares it).
 */
export interface BootFiles {
  kernel: string;
  initrd?: string;
  cmdline: string;
}

interface BootRecord {
  cmdline: string;
  initrd: boolean;
  /** Where in the image they came from (for people). */
  from: { config: string; kernel: string; initrd?: string };
}

const KERNEL_FILE = 'vmlinuz';
const INITRD_FILE = 'initrd.img';
const RECORD_FILE = 'boot.json';
const CONVERT_TIMEOUT_MS = 10 * 60_000;
const DEBUGFS_TIMEOUT_MS = 2 * 60_000;
const SECTOR = 512;

export function bootFilesDir(imagesDir: string, sha256: string): string {
  return join(imagesDir, `${sha256}.boot`);
}

/**
 * An image's boot file as another host names it (`<its images dir>/<sha256>.boot/FILE`) where this host keeps it
 * (under `imagesDir`); any other path (a user's own --kernel) unchanged. For instances moving between hosts.
 */
export function bootFileHere(imagesDir: string, path: string): string {
  const sha = /^([0-9a-f]{64})\.boot$/.exec(basename(dirname(path)))?.[1];
  return sha === undefined ? path : join(bootFilesDir(imagesDir, sha), basename(path));
}

/** Whether `kernel` is an image's own kernel kept by the image store (not one a user gave with --kernel). */
export function isImageKernel(imagesDir: string, kernel: string): boolean {
  const dir = dirname(kernel);
  return basename(kernel) === KERNEL_FILE && dirname(dir) === imagesDir && /^[0-9a-f]{64}\.boot$/.test(basename(dir));
}

/** The boot files stored for an image, or undefined (none were found at import: it boots through its firmware). */
export function readBootFiles(imagesDir: string, sha256: string): BootFiles | undefined {
  const dir = bootFilesDir(imagesDir, sha256);
  let record: BootRecord;
  try {
    record = JSON.parse(readFileSync(join(dir, RECORD_FILE), 'utf8')) as BootRecord;
  } catch {
    return undefined;
  }
  const kernel = join(dir, KERNEL_FILE);
  const initrd = join(dir, INITRD_FILE);
  if (!existsSync(kernel) || (record.initrd && !existsSync(initrd))) return undefined;
  return { kernel, ...(record.initrd ? { initrd } : {}), cmdline: record.cmdline };
}

/** A Linux boot-protocol kernel (bzImage) has "HdrS" at offset 0x202. */
function isLinuxKernel(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(4);
    readSync(fd, magic, 0, 4, 0x202);
    return magic.toString('latin1') === 'HdrS';
  } finally {
    closeSync(fd);
  }
}

function firstSector(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const mbr = Buffer.alloc(SECTOR);
    readSync(fd, mbr, 0, SECTOR, 0);
    return mbr;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads the kernel, initramfs and command line of the image's EXTLINUX entry into `into` (made here; must not
 * exist). The image is read as raw bytes (qemu-img convert) and its ext2/3/4 root filesystem through debugfs:
 * nothing is mounted, no kernel module is needed. Returns false, leaving nothing behind, when the image has no
 * such entry (another boot loader, another filesystem, no MBR Linux partition): it then boots through its
 * firmware as before. `work` is a scratch directory for the raw copy.
 */
export async function extractBootFiles(
  image: { path: string; format: 'qcow2' | 'raw' },
  into: string,
  work: string,
  options: { signal?: AbortSignal } = {},
): Promise<boolean> {
  const timing = (timeoutMs: number) => ({ timeoutMs, ...(options.signal ? { signal: options.signal } : {}) });
  const raw = image.format === 'raw' ? image.path : join(work, 'boot-extract.raw');
  try {
    if (raw !== image.path) await run(['qemu-img', 'convert', '-f', image.format, '-O', 'raw', image.path, raw], timing(CONVERT_TIMEOUT_MS));
    const partition = linuxPartition(firstSector(raw));
    const device = `${raw}?offset=${partition?.offset ?? 0}`;
    const debugfs = (request: string) => run(['debugfs', '-R', request, device], { ...timing(DEBUGFS_TIMEOUT_MS), cwd: into });
    await mkdir(into, { recursive: false, mode: 0o755 });
    let found: { config: string; entry: NonNullable<ReturnType<typeof parseExtlinux>> } | undefined;
    for (const config of EXTLINUX_CONFIG_PATHS) {
      const text = (await debugfs(`cat ${config}`).catch(() => ({ stdout: '' }))).stdout;
      const entry = text === '' ? undefined : parseExtlinux(text, config);
      if (entry !== undefined) {
        found = { config, entry };
        break;
      }
    }
    if (found === undefined) {
      await rm(into, { recursive: true, force: true });
      return false;
    }
    const { entry } = found;
    // debugfs reports a missing file on stderr and still exits 0: what counts is the file it wrote.
    await debugfs(`dump ${entry.kernel} ${KERNEL_FILE}`);
    if (entry.initrd !== undefined) await debugfs(`dump ${entry.initrd} ${INITRD_FILE}`);
    const kernel = join(into, KERNEL_FILE);
    const initrd = join(into, INITRD_FILE);
    const usable =
      existsSync(kernel) && statSync(kernel).size > 0 && isLinuxKernel(kernel) && (entry.initrd === undefined || (existsSync(initrd) && statSync(initrd).size > 0));
    if (!usable) {
      await rm(into, { recursive: true, force: true });
      return false;
    }
    const record: BootRecord = {
      cmdline: directBootCmdline(entry.append),
      initrd: entry.initrd !== undefined,
      from: { config: found.config, kernel: entry.kernel, ...(entry.initrd === undefined ? {} : { initrd: entry.initrd }) },
    };
    await writeFile(join(into, RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o444 });
    return true;
  } catch (e) {
    await rm(into, { recursive: true, force: true });
    if (options.signal?.aborted === true) throw e;
    // Not an ext filesystem, debugfs missing, a damaged table: the image still boots through its firmware.
    return false;
  } finally {
    if (raw !== image.path) await rm(raw, { force: true });
  }
}
