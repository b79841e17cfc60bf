/**
 * Instance snapshots. Internal: qcow2 snapshots inside each disk (with the guest's memory when it runs:
 * QMP snapshot-save/-load/-delete jobs; disk-only with qemu-img when stopped). External: a new qcow2 overlay on
 * every disk (blockdev-add + blockdev-snapshot live, qemu-img offline); the file under the overlay is the
 * snapshot's state. Revert puts a fresh overlay on it; delete merges the one file above it down into it
 * (block-commit live, qemu-img commit offline). One kind per instance at a time, so neither can strand the other.
 *
 * All of it is QEMU's block layer (qcow2 files, QMP transactions and block jobs): an instance driver offers it
 * through its `snapshots` capability (src/instances/driver.ts), checked when a snapshot is planned.
 *
 * Crash safety: a snapshot row is written first in a transitional state and the spec changes in the same
 * transaction that makes it ready; reconcile (repairSnapshots) finishes or undoes what a crash left.
 */
export { checkSnapshotExists, type SnapshotResult } from './snapshots/common.ts';
export { createSnapshot } from './snapshots/create.ts';
export { deleteSnapshot } from './snapshots/delete.ts';
export { listSnapshots } from './snapshots/list.ts';
export { checkSnapshotCreate, type CreateSnapshotRequest } from './snapshots/plan.ts';
export { repairSnapshots } from './snapshots/repair.ts';
export { revertSnapshot } from './snapshots/revert.ts';
