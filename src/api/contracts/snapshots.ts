/**
 * An instance's snapshots (`virtnode snapshot ...`, `/instances/{instance}/snapshots`): create, revert and delete
 * are operations on the instance. The core checks the names (naming the field as the CLI does). The instance's
 * path parameter is `instance`, as the body of create has a `name` of its own (the snapshot's).
 */
import Type from 'typebox';
import { endpoints } from '../endpoint.ts';
import { CheckedName, Closed, CreateSnapshotBody, Snapshot } from '../schemas.ts';

const InstanceParams = Closed({ instance: CheckedName });
const SnapshotParams = Closed({ instance: CheckedName, snap: CheckedName });

/** What create, revert and delete report: the snapshot, and what happened beyond the obvious (notes). */
export const SnapshotOutcome = Closed({ snapshot: Snapshot, notes: Type.Array(Type.String(), { description: 'what happened beyond the obvious (a restart, a merge)' }) });

export const snapshotEndpoints = endpoints({
  list: {
    method: 'GET',
    path: '/instances/:instance/snapshots',
    summary: "an instance's snapshots, oldest first; each names the snapshot it was taken from (parent)",
    params: InstanceParams,
    response: Type.Array(Snapshot),
    nameCheckedByCore: true,
  },
  create: {
    method: 'POST',
    path: '/instances/:instance/snapshots',
    summary: 'snapshot an instance: running → with memory (internal) or diskOnly (external); stopped → disks, internal or external (an operation; result: {snapshot, notes})',
    params: InstanceParams,
    body: CreateSnapshotBody,
    bodyOptional: true,
    response: SnapshotOutcome,
    operation: true,
    nameCheckedByCore: true,
  },
  revert: {
    method: 'POST',
    path: '/instances/:instance/snapshots/:snap/revert',
    summary: 'return to a snapshot, discarding everything since (may restart a running instance; the notes say so) (an operation)',
    params: SnapshotParams,
    response: SnapshotOutcome,
    operation: true,
    nameCheckedByCore: true,
  },
  delete: {
    method: 'DELETE',
    path: '/instances/:instance/snapshots/:snap',
    summary: 'delete a snapshot (an external one is merged into the file above it) (an operation)',
    params: SnapshotParams,
    response: SnapshotOutcome,
    operation: true,
    nameCheckedByCore: true,
  },
});
