/**
 * How an offline move sends a disk whose chain reaches the instance's image through layers the target lacks (a
 * warm launch's disk: an overlay on the template's saved disk, itself an overlay on the template's disk). The
 * decision (which base, which layers fold) is planChain, pure; foldOnto writes the one overlay that is sent, a new
 * file, leaving the chain as it was.
 */
import { constants } from 'node:fs';
import { copyFile, rm } from 'node:fs/promises';
import { run } from '../../exec/run.ts';
import { VirtnodeError } from '../../lib/errors.ts';

const FOLD_TIMEOUT_MS = 60 * 60_000;

/** How a disk travels offline, from its backing chain. */
export type ChainPlan =
  /** No backing file: the file is sent as it is. */
  | { kind: 'whole' }
  /**
   * An overlay of the image: the target has (or fetches) the image; `fold` lists the layers between the disk and
   * the image (top first), whose data goes into the overlay that is sent. Empty: the disk file itself is sent.
   */
  | { kind: 'overlay'; fold: string[] };

/**
 * `chain`: the disk's file and its backing files, top first (`backingChain`'s paths). `image`: the path of the
 * instance's image on this host, if it has one. Refused (naming `disks`) when the chain has a backing file and
 * does not reach the image.
 */
export function planChain(diskId: string, chain: readonly string[], image: string | undefined): ChainPlan {
  if (chain.length <= 1) return { kind: 'whole' };
  const at = image === undefined ? -1 : chain.indexOf(image, 1);
  if (at < 0) throw new VirtnodeError('HOST_UNSUPPORTED', `disk ${diskId} is an overlay of ${chain[1]}, which is not the instance's image`, { field: 'disks' });
  return { kind: 'overlay', fold: chain.slice(1, at) };
}

/**
 * Writes to `out` (a new file; `top`'s backing name must resolve from its directory too, as the absolute names
 * virtnode writes do) one qcow2 overlay
 * of `base` that reads as `top` does, every layer between them folded in: a copy of `top`, rebased (safe) onto
 * `base`, which writes into the copy whatever the folded layers hold that differs from the base. The chain is
 * only read. (`qemu-img convert -B` is no substitute: QEMU 7.2 writes only what `top` itself allocates.)
 */
export async function foldOnto(top: string, base: { path: string; format: string }, out: string, options: { signal?: AbortSignal } = {}): Promise<void> {
  try {
    await copyFile(top, out, constants.COPYFILE_FICLONE);
    const argv = ['qemu-img', 'rebase', '-q', '-f', 'qcow2', '-b', base.path, '-F', base.format, out];
    await run(argv, { timeoutMs: FOLD_TIMEOUT_MS, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  } catch (e) {
    await rm(out, { force: true });
    throw e;
  }
}
