/**
 * The disk-ownership guard around a QEMU start: every writable disk is claimed before QEMU opens it, the claims
 * move to QEMU's process once it runs, and are given back when it has ended (stop, crash, failed start).
 */
import { hostname } from 'node:os';
import type { CoreContext } from '../core/context.ts';
import type { ProcessIdentity } from '../lib/proc.ts';
import { diskKey } from '../qemu/protocol-node.ts';
import type { DiskHolder, DiskOwnership } from '../store/disk-ownership.ts';
import { defaultOwnersFile, LocalDiskOwnership } from '../store/disk-ownership-local.ts';
import type { Instance } from './model.ts';

const localStores = new Map<string, LocalDiskOwnership>();

/** The core's guard (a cluster's, backed by etcd), else this host's local one. */
export function diskOwnership(core: CoreContext): DiskOwnership {
  if (core.diskOwnership !== undefined) return core.diskOwnership;
  const file = defaultOwnersFile(core.paths.root);
  let store = localStores.get(file);
  if (store === undefined) {
    store = new LocalDiskOwnership(file);
    localStores.set(file, store);
  }
  return store;
}

export function diskHolder(core: CoreContext, instance: Instance): DiskHolder {
  return { host: hostname(), stateDir: core.paths.root, instance: instance.name };
}

function writableDisks(instance: Instance): string[] {
  return instance.spec.disks.filter((d) => d.readonly !== true).map((d) => diskKey(d.path));
}

export async function claimDisks(core: CoreContext, instance: Instance, process: ProcessIdentity): Promise<void> {
  await diskOwnership(core).acquire(writableDisks(instance), diskHolder(core, instance), process);
}

export async function handOverDisks(core: CoreContext, instance: Instance, process: ProcessIdentity): Promise<void> {
  await diskOwnership(core).handOver(writableDisks(instance), diskHolder(core, instance), process);
}

export async function releaseDisks(core: CoreContext, instance: Instance): Promise<void> {
  await diskOwnership(core).release(writableDisks(instance), diskHolder(core, instance));
}
