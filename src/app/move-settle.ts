/**
 * The source host's side of a live move whose end it did not see: its daemon died mid-move, or the target never
 * said whether the guest runs there. The instance directory still holds the OUTGOING_MARKER; the QEMU here is
 * running (the move had not stopped it) or paused (`postmigrate`). The source never guesses: the claim in etcd and
 * the target's own answer decide.
 * - The claim names the target: the target adopted the guest, which runs there. This host quits its QEMU and
 *   forgets the instance (record, taps, directory).
 * - The claim names this host and the target runs the guest: the source sends it the adopt step (then as above).
 * - The claim names this host and the target has no running copy (it aborted the move, or never had it): the move
 *   is undone here (recoverSource) and the guest runs where it was.
 * - The target does not answer: nothing changes (never two running copies); asked again on the next pass.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { unmarkMoving } from '../cluster/move-mark.ts';
import { ownerOf } from '../cluster/placement.ts';
import type { ClusterService } from '../cluster/service.ts';
import { leaveSource, OUTGOING_MARKER, type OutgoingMarker, undoOutgoing } from '../instances/migrate/move-instance.ts';
import type { TargetResumed } from '../instances/migrate/protocol.ts';
import type { Instance } from '../instances/model.ts';
import { VirtnodeError, toVirtnodeError } from '../lib/errors.ts';
import { withLockIfFree } from '../store/locks.ts';
import type { InstancePolicy } from '../store/policies.ts';
import type { AppCore } from './context.ts';

/** What the target answers to the `status` step of a move. */
export type MoveStatus =
  /** Prepared, the guest does not run there (an abort is accepted). */
  | { state: 'prepared' }
  /** Asked to resume, the guest's memory still arriving: ask again. */
  | { state: 'resuming' }
  /** The guest runs there. */
  | { state: 'running'; resumed: TargetResumed }
  /** Nothing of this move there (aborted, or never prepared, or its QEMU gone before it ran). */
  | { state: 'unknown' };

/** The target's steps the settling needs (the cluster API route's, src/app/instances-move.ts). */
export interface SettleSteps {
  status(to: string, id: string, instance: Instance): Promise<MoveStatus>;
  adopt(to: string, id: string, instance: Instance, policy: InstancePolicy): Promise<{ claimError?: string }>;
  abort(to: string, id: string, name: string, reason: string): Promise<void>;
}

type Log = (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void;

function readMarker(dir: string): OutgoingMarker | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, OUTGOING_MARKER), 'utf8')) as OutgoingMarker;
  } catch {
    return undefined;
  }
}

/** The loop's part on the source: each instance with an outgoing marker and no operation on it is settled. */
export async function settleOutgoing(app: AppCore, c: ClusterService, steps: SettleSteps, log: Log): Promise<void> {
  for (const listed of app.core.repos.instances.list()) {
    const dir = app.paths.instanceDir(listed.name);
    if (!existsSync(join(dir, OUTGOING_MARKER))) continue;
    await withLockIfFree(app.core.db, listed.name, 'settle-move', async () => {
      const instance = app.core.repos.instances.get(listed.name);
      const marker = readMarker(dir);
      if (instance === undefined || marker?.to === undefined) return;
      await settleOne(app, c, steps, instance, marker as Required<OutgoingMarker>, log);
    });
  }
}

async function settleOne(app: AppCore, c: ClusterService, steps: SettleSteps, instance: Instance, marker: Required<OutgoingMarker>, log: Log): Promise<void> {
  const name = instance.name;
  const fields = { instance: name, to: marker.to, move: marker.id };
  const owner = await ownerOf(c.kv(), name);
  if (owner === marker.to) {
    await leaveSource(app.core, instance);
    app.changed();
    log('info', 'move settled: the target adopted the guest, which runs there; its paused copy here is gone', fields);
    return;
  }
  if (owner !== c.host) {
    log('warn', 'move not settled: the claim names neither this host nor the target', { ...fields, owner });
    return;
  }
  let status: MoveStatus;
  try {
    status = await steps.status(marker.to, marker.id, instance);
  } catch {
    return; // the target does not answer: the guest stays as it is here (paused, or running if the move had not stopped it)
  }
  switch (status.state) {
    case 'running': {
      const r = await steps.adopt(marker.to, marker.id, instance, app.policies.get(name));
      if (r.claimError !== undefined) {
        log('warn', 'move not settled: the target recorded the guest but its claim did not move', { ...fields, err: r.claimError });
        return;
      }
      await leaveSource(app.core, instance);
      app.changed();
      log('info', 'move settled: the guest runs on the target, which adopted it now', fields);
      return;
    }
    case 'prepared':
      await steps.abort(marker.to, marker.id, name, 'the source settled the move after a crash');
      await undoOutgoing(app.core, instance);
      await unmarkMoving(c.kv(), name, marker.id);
      log('info', 'move settled: undone; the guest runs here again (the target had not run it)', fields);
      return;
    case 'unknown':
      await undoOutgoing(app.core, instance);
      await unmarkMoving(c.kv(), name, marker.id);
      log('info', 'move settled: undone; the guest runs here again (the target has no copy of it)', fields);
      return;
    case 'resuming':
      return;
  }
}

/**
 * The resume step got no answer (`error`): asks the target what became of the move (`ask`), again and again for
 * `waitMs`. Answers how the guest was resumed if it runs there; throws `error` once the target said it does not
 * (the engine then aborts the target and resumes the guest here); throws after the wait when the target never said
 * (the engine's abort fails too, and the guest stays paused here: the target adopts it on its own if it runs there,
 * and the settling of moves finds out later).
 */
export async function resumedAfterAll(error: unknown, ask: () => Promise<MoveStatus>, waitMs: number, pauseMs = 1_000): Promise<TargetResumed> {
  const deadline = Date.now() + waitMs;
  let last = error;
  for (;;) {
    let status: MoveStatus | undefined;
    try {
      status = await ask();
    } catch (e) {
      last = e;
    }
    if (status?.state === 'running') return status.resumed;
    if (status?.state === 'prepared' || status?.state === 'unknown') throw error;
    if (Date.now() > deadline) {
      throw new VirtnodeError('TIMEOUT', `the target did not say whether the guest runs there (${toVirtnodeError(last).message}); the guest stays paused on this host until it does`, { cause: error });
    }
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}
