/**
 * The most bytes one image may take in a directory: the free space there (less a reserve for everything else
 * virtnode writes), and never more than VIRTNODE_MAX_IMAGE_BYTES. Downloads and decompressions count their bytes
 * against it as they stream, so a server or a small file that never ends cannot fill the disk.
 */
import { statfs } from 'node:fs/promises';
import { formatSize } from '../lib/units.ts';

const FREE_SPACE_RESERVE_BYTES = 256 * 1024 * 1024;

export interface SizeLimit {
  bytes: number;
  why: string;
}

export async function imageSizeLimit(dir: string): Promise<SizeLimit> {
  const maxImageBytes = Number(process.env['VIRTNODE_MAX_IMAGE_BYTES'] ?? 2 ** 40);
  const fs = await statfs(dir);
  const room = Math.max(0, fs.bavail * fs.bsize - FREE_SPACE_RESERVE_BYTES);
  return room < maxImageBytes
    ? { bytes: room, why: `the free space of the state directory's filesystem (${formatSize(room)} after a reserve of ${formatSize(FREE_SPACE_RESERVE_BYTES)})` }
    : { bytes: maxImageBytes, why: `the largest image virtnode takes (${formatSize(maxImageBytes)}, VIRTNODE_MAX_IMAGE_BYTES)` };
}
