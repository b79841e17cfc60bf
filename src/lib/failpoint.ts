/**
 * Every crash-injection point, listed per operation in the order the operation reaches them. `failpoint()` takes
 * only a listed name, and the fault tier (test/integration/faults-sigkill.test.ts) crashes each operation at each
 * of its points: a new step gets its point here, and is then tried for real. A point shared by several operations
 * (a step of `define`, of `start`) is listed in each.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export const FAILPOINTS = {
  launch: [
    'create.after-record',
    'create.after-mkdir',
    'launch.after-disk',
    'launch.after-seed',
    'create.after-disk',
    'launch.after-define',
    'start.after-mark',
    'start.after-spawn',
    'start.after-cont',
    'launch.after-boot',
  ],
  /** `clone SRC NEW` of a stopped instance: a copy of its disk, sealed offline. */
  'clone-full': ['create.after-record', 'create.after-mkdir', 'clone.after-disk', 'seal.appliance-running', 'clone.after-seal', 'create.after-disk'],
  /** `clone SRC NEW --linked` of a stopped instance: its disk becomes a read-only base under both. */
  'clone-linked': [
    'clone.after-base',
    'clone.after-rebase-overlay',
    'clone.after-rebase',
    'create.after-record',
    'create.after-mkdir',
    'clone.after-disk',
    'seal.appliance-running',
    'clone.after-seal',
    'create.after-disk',
  ],
  /** Internal snapshot of a stopped instance (qemu-img snapshot in each disk). */
  'snapshot-create-internal': ['snapshot.after-record', 'snapshot.after-take'],
  /** External snapshot of a running instance (overlays switched in one QMP transaction). */
  'snapshot-create-external': ['snapshot.after-record', 'snapshot.after-overlays', 'snapshot.after-take'],
  'snapshot-revert-internal': ['revert.after-mark', 'revert.after-apply'],
  'snapshot-revert-external': ['revert.after-mark', 'revert.after-overlay', 'revert.after-apply'],
  'snapshot-delete-internal': ['snapshot-rm.after-mark', 'snapshot-rm.after-disks'],
  /** Delete of an external snapshot of a running instance (a live block-commit). */
  'snapshot-delete-external': ['snapshot-rm.after-mark', 'snapshot-rm.after-disks'],
  'volume-create': ['volume.after-file'],
  'volume-export': ['export.after-scratch', 'export.after-copy', 'export.after-link'],
  /** `template create` of a stopped instance: sealed offline, then stored. */
  'template-create': ['seal.appliance-running', 'template.after-seal', 'template.after-mkdir', 'template.after-link', 'template.after-record'],
  delete: ['delete.after-mark'],
} as const satisfies Record<string, readonly string[]>;

/**
 * Points of operations between the hosts of a cluster, where a daemon (not the CLI) dies: tried by the cluster
 * tests (test/integration/cluster-move-crash.test.ts, cluster-move-failover.test.ts), as the single-host fault tier
 * cannot. `move.after-resume`:
 * the source, once the target answered that the guest runs there, before its adopt step;
 * `move.target-after-resume`: the target, once the guest runs there, before it answers the source;
 * `move.target-before-cont`: the target, its incoming marker removed (no abort accepted now), before its `cont`.
 */
export const CLUSTER_FAILPOINTS = {
  move: ['move.target-before-cont', 'move.after-resume', 'move.target-after-resume'],
} as const satisfies Record<string, readonly string[]>;

export type FailpointOperation = keyof typeof FAILPOINTS;
export type FailpointName = (typeof FAILPOINTS)[FailpointOperation][number] | (typeof CLUSTER_FAILPOINTS)[keyof typeof CLUSTER_FAILPOINTS][number];

/**
 * Crash injection for tests: when VIRTNODE_FAILPOINT names this point, the process kills itself with SIGKILL
 * right here, exactly as a power cut or `kill -9` would. Reconciliation must then repair everything.
 */
export function failpoint(name: FailpointName): void {
  if (process.env['VIRTNODE_FAILPOINT'] === name) process.kill(process.pid, 'SIGKILL');
}

/** Points where a test holds an operation for a while (VIRTNODE_DELAYPOINT) to act in that window. */
export type DelaypointName = 'attach.after-check' | 'block-job.ready' | 'launch.after-seed';

/**
 * Race injection for tests: when VIRTNODE_DELAYPOINT is `NAME:MS`, the operation waits here that long, so a test
 * can run a second operation into the window deterministically.
 */
export async function delaypoint(name: DelaypointName, signal?: AbortSignal): Promise<void> {
  const [point, ms] = (process.env['VIRTNODE_DELAYPOINT'] ?? '').split(':');
  if (point === name) await sleep(Number(ms), undefined, signal === undefined ? {} : { signal });
}
