/**
 * The most bytes one image may take in a directory: the free space there, less a reserve for everything else
 * virtnode writes (the database, logs, other work), and never more than VIRTNODE_MAX_IMAGE_BYTES. Downloads and
 * decompressions count their bytes against it as they stream, so a server or a small file that never ends
 * cannot fill the disk.
 */
import { statfs } from 'node:fs/promises';
import { formatSize } from '../lib/units.ts';

/** The reserve: 256 MiB, or 5% of a small filesystem. */
const RESERVE_BYTES = 256 * 1024 * 1024;
const RESERVE_FRACTION = 0.05;

export interface SizeLimit {
  bytes: number;
  why: string;
  /** `space`: the filesystem's free space is the limit (running into it is a full disk, not a bad image). */
  kind: 'space' | 'max';
}

export async function imageSizeLimit(dir: string): Promise<SizeLimit> {
  const maxImageBytes = Number(process.env['VIRTNODE_MAX_IMAGE_BYTES'] ?? 2 ** 40);
  const fs = await statfs(dir);
  const reserve = Math.min(RESERVE_BYTES, Math.floor(fs.blocks * fs.bsize * RESERVE_FRACTION));
  const room = Math.max(0, fs.bavail * fs.bsize - reserve);
  return room < maxImageBytes
    ? { bytes: room, kind: 'space', why: `the free space of the state directory's filesystem (${formatSize(room)} after a reserve of ${formatSize(reserve)})` }
    : { bytes: maxImageBytes, kind: 'max', why: `the largest image virtnode takes (${formatSize(maxImageBytes)}, VIRTNODE_MAX_IMAGE_BYTES)` };
}
