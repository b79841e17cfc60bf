/**
 * One writer per disk, guaranteed by virtnode itself: a start claims every writable disk before QEMU opens it and
 * gives the claims back once QEMU has closed them. QEMU's own image locking is a second guard where it works; over
 * nfs:// (libnfs) it does not exist, so this is the only one there.
 *
 * The store is an interface shaped like etcd: a claim is created only if absent, or taken over only if its
 * revision is still the one read (a compare-and-swap, never a lock), and released only by its holder. The local
 * implementation (./disk-ownership-local.ts) keeps the claims in a host-wide SQLite file; a cluster backs the same
 * interface with etcd transactions. It lives in src/store (not src/storage) because src/instances, which starts
 * QEMU, sits below src/storage in the layering; claims are keyed by `diskKey` (src/qemu/protocol-node.ts).
 */
import { VirtnodeError } from '../lib/errors.ts';
import type { ProcessIdentity } from '../lib/proc.ts';

/** Who writes a disk: an instance of one virtnode state directory on one host. */
export interface DiskHolder {
  host: string;
  stateDir: string;
  instance: string;
}

export interface DiskClaim {
  /** The disk's identity (diskKey in src/qemu/protocol-node.ts). */
  disk: string;
  holder: DiskHolder;
  /** The process holding the disk open (QEMU), or the virtnode process about to start it. */
  process: ProcessIdentity;
  /** Raised by every change; a takeover or release compares it. */
  revision: number;
}

export interface DiskOwnership {
  /**
   * Claims all `disks` for `holder` (all or none). A disk claimed by another holder whose claim is still alive
   * is refused (CONFLICT naming that holder); a dead claim (its process gone, its host fenced) is taken over.
   * Claims the holder already has are renewed.
   */
  acquire(disks: readonly string[], holder: DiskHolder, process: ProcessIdentity): Promise<DiskClaim[]>;
  /** Moves the holder's claims on `disks` to the process now holding them open (QEMU, once spawned). */
  handOver(disks: readonly string[], holder: DiskHolder, process: ProcessIdentity): Promise<void>;
  /** Gives back the holder's claims on `disks` (others' claims are left alone). */
  release(disks: readonly string[], holder: DiskHolder): Promise<void>;
  /** The live claim on a disk, if any. */
  claimOf(disk: string): Promise<DiskClaim | undefined>;
}

export function sameHolder(a: DiskHolder, b: DiskHolder): boolean {
  return a.host === b.host && a.stateDir === b.stateDir && a.instance === b.instance;
}

export function describeHolder(claim: DiskClaim, here: DiskHolder): string {
  const where = claim.holder.host === here.host && claim.holder.stateDir === here.stateDir ? '' : ` of state directory ${claim.holder.stateDir} on host ${claim.holder.host}`;
  return `instance ${claim.holder.instance}${where} (pid ${claim.process.pid})`;
}

export function diskInUse(path: string, claim: DiskClaim, here: DiskHolder): VirtnodeError {
  return new VirtnodeError('CONFLICT', `disk ${path} is in use by ${describeHolder(claim, here)}: ${here.instance} would be a second writer`, {
    field: 'disk',
    hint: `stop ${claim.holder.instance} first; two VMs writing one disk corrupt it`,
  });
}
