/**
 * The disks of a live move that both hosts reach (on a shared pool: an nfs:// URL, or a file of a shared-dir pool
 * mounted at the same path on every host): nothing is copied, the target's QEMU opens the same file. QEMU's
 * migration keeps one writer: the target opens the image inactive (no write, no lock) until the switch-over,
 * when the source inactivates its own and the target activates it at its `cont`. The disk's ownership claim in
 * etcd moves with the instance's claim (src/app/move-arrivals.ts).
 */
import { existsSync } from 'node:fs';
import type { ClusterService } from '../cluster/service.ts';
import type { DiskTransfer } from '../instances/migrate/protocol.ts';
import type { Instance } from '../instances/model.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { diskKey } from '../qemu/protocol-node.ts';
import { imageInfo } from '../qemu/img.ts';
import { isSharedDisk } from './cluster-shared-disks.ts';
import type { AppCore } from './context.ts';

/** A shared disk as the target checks it: its id, its path (the same on both hosts), the file it is an overlay of. */
export interface SharedDisk {
  disk: string;
  path: string;
  backing?: string;
}

/** The instance's disks on shared pools, with what they are overlays of (which the target must reach too). */
export async function sharedDisksOf(app: AppCore, instance: Instance): Promise<SharedDisk[]> {
  const out: SharedDisk[] = [];
  for (const d of instance.spec.disks) {
    if (!isSharedDisk(app, diskKey(d.path))) continue;
    const backing = d.format === 'qcow2' && !d.path.includes('://') ? (await imageInfo(d.path, { format: 'qcow2' })).backingFile : undefined;
    out.push({ disk: d.id, path: d.path, ...(backing === undefined ? {} : { backing }) });
  }
  return out;
}

/** The live move's transfers of those disks: shared, by disk id. */
export function sharedTransfers(disks: readonly SharedDisk[]): Record<string, DiskTransfer> {
  return Object.fromEntries(disks.map((d) => [d.disk, { kind: 'shared', path: d.path } satisfies DiskTransfer]));
}

/** The target's check: each shared disk is on a shared pool of this host too, at the same path. Refused naming `disks`. */
export function checkSharedHere(app: AppCore, c: ClusterService, disks: readonly SharedDisk[]): void {
  for (const d of disks) {
    const local = !d.path.includes('://');
    const why = !isSharedDisk(app, diskKey(d.path))
      ? 'is on no shared pool of this host'
      : local && !existsSync(d.path)
        ? 'is not there (the shared pool is not mounted at the same path)'
        : d.backing !== undefined && !existsSync(d.backing)
          ? `is an overlay of ${d.backing}, which this host does not have`
          : undefined;
    if (why !== undefined) {
      throw new VirtnodeError('HOST_UNSUPPORTED', `disks: ${d.disk} (${d.path}) ${why}: host ${c.host} cannot open it where the source does`, {
        field: 'disks',
        hint: `create the same shared pool on ${c.host} (\`virtnode pool create NAME --type shared-dir --path DIR\`, DIR mounted at the same place on every host), or move it offline`,
      });
    }
  }
}
