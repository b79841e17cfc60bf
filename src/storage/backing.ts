import { closeSync, openSync, readSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';

const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
const MAX_CHAIN = 64;

/**
 * The backing file named in a qcow2 header (absolute; a relative name is relative to the image's directory), or
 * undefined for a raw image, a qcow2 without one, or a file that cannot be read. Read from the header itself:
 * cheap enough to walk every disk's chain on each reconciliation.
 */
export function backingFile(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const header = Buffer.alloc(20);
    if (readSync(fd, header, 0, 20, 0) < 20 || header.readUInt32BE(0) !== QCOW2_MAGIC) return undefined;
    const offset = Number(header.readBigUInt64BE(8));
    const size = header.readUInt32BE(16);
    if (offset === 0 || size === 0 || size > 4096) return undefined;
    const name = Buffer.alloc(size);
    readSync(fd, name, 0, size, offset);
    const text = name.toString('utf8');
    return isAbsolute(text) ? text : resolve(dirname(path), text);
  } finally {
    closeSync(fd);
  }
}

/** The files under `path`: its backing file, that one's backing file, and so on (not `path` itself). */
export function backingChain(path: string): string[] {
  const chain: string[] = [];
  for (let current = backingFile(path); current !== undefined && chain.length < MAX_CHAIN; current = backingFile(current)) {
    chain.push(current);
  }
  return chain;
}

/**
 * Files of `disk`'s backing chain that lie in `dir` (an instance's directory, e.g. the disk under an external
 * snapshot): they go with the instance, so that disk cannot become a template's or a shared base.
 */
export function chainInside(disk: string, dir: string): string[] {
  return backingChain(disk).filter((f) => f.startsWith(`${dir}/`));
}
