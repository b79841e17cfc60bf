/**
 * The target host's side of a live move once the guest may run here. Once it runs on the target, the target is the
 * authority: what it needs to adopt the guest on its own (the record and policy the source would send at its adopt
 * step, the source host, its QEMU and disks) is written to the instance directory (ARRIVAL_FILE, 0600) when the
 * move is prepared. The source's adopt step normally finishes the move; if it does not come within the adopt wait
 * after the guest ran here (the source daemon died, the link did), or this daemon restarted meanwhile, this host
 * adopts the guest itself: its record here, then its claim moved from the source in one guarded transaction.
 * A guest that ran here is never aborted. A guest whose QEMU is still paused when it is adopted (this daemon died
 * between removing the incoming marker and its `cont`) is resumed then: past that marker the target refuses every
 * abort, so the source can no longer run its copy (it runs it again only once the target confirmed its abort).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { moveClaim, ownerOf } from '../cluster/placement.ts';
import type { ClusterService } from '../cluster/service.ts';
import { adoptMovedInstance } from '../instances/migrate/move-instance.ts';
import { setHostKeys } from '../cloudinit/known-hosts.ts';
import type { TargetResumed } from '../instances/migrate/protocol.ts';
import { ARRIVAL_FILE, INCOMING_MARKER, pendingArrivals } from '../instances/migrate/stale-incoming.ts';
import type { MigrationTarget } from '../instances/migrate/target.ts';
import type { Instance } from '../instances/model.ts';
import { VirtnodeError, toVirtnodeError } from '../lib/errors.ts';
import { writeFileAtomic } from '../lib/fs-atomic.ts';
import type { ProcessIdentity } from '../lib/proc.ts';
import { isOurQemu } from '../qemu/process.ts';
import { cont, queryStatus } from '../qmp/commands.ts';
import { QmpConnection } from '../qmp/connection.ts';
import { runtimePaths } from '../instances/runtime.ts';
import type { InstancePolicy } from '../store/policies.ts';
import type { AppCore } from './context.ts';
import { withBootFilesHere } from './move-common.ts';

/** What ARRIVAL_FILE holds. */
export interface ArrivalRecord {
  /** The move's id (the offer's). */
  id: string;
  name: string;
  /** The source host, whose claim this host takes over. */
  from: string;
  instance: Instance;
  policy: InstancePolicy;
  process: ProcessIdentity;
  placedDisks: Record<string, string>;
  fetchedBases: Record<string, string>;
  /** Once the guest ran here: what the resume step answered. */
  resumed?: TargetResumed;
}

/** A move coming here that this daemon prepared (in memory): its target, and where its steps are. */
export interface IncomingMove {
  target: MigrationTarget;
  name: string;
  /** Aborts a prepared move whose source never came back (before the guest runs here only). */
  timer: NodeJS.Timeout | undefined;
  resuming: boolean;
  resumed?: TargetResumed;
}

/** How many adopted moves' resume times a daemon remembers (for a source that asks after a lost answer). */
const REMEMBERED = 64;

/** The moves this daemon is the target of, shared by the cluster API route and the settling loop. */
export class IncomingMoves {
  private readonly moves = new Map<string, IncomingMove>();
  private readonly adopted = new Map<string, TargetResumed>();

  /** Move `id` was adopted here: how its guest was resumed, for the `status` step (while this daemon runs). */
  remember(id: string, resumed: TargetResumed | undefined): void {
    if (resumed === undefined) return;
    this.adopted.set(id, resumed);
    for (const old of this.adopted.keys()) {
      if (this.adopted.size <= REMEMBERED) break;
      this.adopted.delete(old);
    }
  }

  resumedOf(id: string): TargetResumed | undefined {
    return this.adopted.get(id);
  }

  get(id: unknown): IncomingMove | undefined {
    return typeof id === 'string' ? this.moves.get(id) : undefined;
  }

  set(id: string, move: IncomingMove): void {
    this.moves.set(id, move);
  }

  /** Drops a move (its abandon timer, its QMP connection: the QEMU now runs as any instance's does). */
  forget(id: string): void {
    const m = this.moves.get(id);
    if (m === undefined) return;
    clearTimeout(m.timer);
    m.target.connection?.close();
    this.moves.delete(id);
  }
}

const ms = (name: string, fallback: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new VirtnodeError('INVALID', `${name}: "${v}" is not a number of milliseconds`, { field: name });
  return n;
};

/** How long after the guest ran here the target waits for the source's adopt step before it adopts on its own. */
export const adoptWaitMs = (): number => ms('VIRTNODE_MOVE_ADOPT_WAIT_MS', 20_000);
/** How long a source whose resume step got no answer asks the target whether the guest runs there. */
export const statusWaitMs = (): number => ms('VIRTNODE_MOVE_STATUS_MS', 120_000);

const arrivalPath = (app: AppCore, name: string) => join(app.paths.instanceDir(name), ARRIVAL_FILE);

export function writeArrival(app: AppCore, arrival: ArrivalRecord): void {
  writeFileAtomic(arrivalPath(app, arrival.name), `${JSON.stringify(arrival)}\n`, 0o600);
}

export function readArrival(app: AppCore, name: string): ArrivalRecord | undefined {
  try {
    return JSON.parse(readFileSync(arrivalPath(app, name), 'utf8')) as ArrivalRecord;
  } catch {
    return undefined;
  }
}

/** The guest of move `id` may run here: its arrival is past the incoming marker and its QEMU is alive. */
export function arrivedHere(app: AppCore, id: string, name: string): ArrivalRecord | undefined {
  const a = readArrival(app, name);
  if (a?.id !== id || existsSync(join(app.paths.instanceDir(name), INCOMING_MARKER))) return undefined;
  return isOurQemu(a.process, a.instance.uuid) ? a : undefined;
}

/**
 * Adopts an arrived guest: its record here (once), then its claim moved from the source to this host (guarded by
 * the claim naming the source; nothing to do when it names this host already). The arrival file goes only once
 * both are done, so a failed claim move is tried again. Answers the claim's failure, if any, and when it resumed
 * a guest the move had left paused here, when.
 */
export async function adoptArrival(app: AppCore, c: ClusterService, a: ArrivalRecord): Promise<{ claimError?: string; resumed?: TargetResumed }> {
  return app.core.withLock(a.name, 'adopt', { lockWaitMs: 30_000 }, async () => {
    const existing = app.core.repos.instances.get(a.name);
    let resumed: TargetResumed | undefined;
    if (existing === undefined) {
      if (!isOurQemu(a.process, a.instance.uuid)) throw new VirtnodeError('INVALID_STATE', `the QEMU of ${a.name}, moved here, is gone`);
      if (await runIfPaused(app, a.name)) resumed = { pid: a.process.pid, resumedAt: Date.now() };
      const here = withBootFilesHere(app, a.instance);
      const seeded = here.spec.httpSeedDir === undefined ? here : { ...here, spec: { ...here.spec, httpSeedDir: join(app.paths.instanceDir(here.name), 'seed') } };
      adoptMovedInstance(app.core, seeded, a);
      // Its SSH forward is the same loopback port here: this host's known_hosts gets the guest's keys for it.
      const ssh = seeded.spec.ssh;
      if (ssh?.hostPort !== undefined && ssh.address === undefined) {
        await setHostKeys(app.paths.knownHosts, [`[127.0.0.1]:${ssh.hostPort}`], ssh.hostPublicKeys, { marker: seeded.name }).catch(() => {});
      }
      await app.core.networks.syncReservationsOf(seeded.nics.map((n) => n.network)).catch(() => {});
      app.policies.set(a.name, a.policy);
      app.changed();
    } else if (existing.uuid !== a.instance.uuid) {
      throw new VirtnodeError('CONFLICT', `another instance named ${a.name} is recorded here`, { field: 'name' });
    }
    try {
      // Its disks on shared pools (the same files) are this host's QEMU's from now on, in the same transaction.
      if ((await ownerOf(c.kv(), a.name)) !== c.host) await moveClaim(c.kv(), a.name, a.from, c.host!, undefined, { disks: 'move', diskHolder: { process: a.process, stateDir: app.core.paths.root } });
    } catch (e) {
      return { claimError: toVirtnodeError(e).message, ...(resumed === undefined ? {} : { resumed }) };
    }
    rmSync(arrivalPath(app, a.name), { force: true });
    return resumed === undefined ? {} : { resumed };
  });
}

/** Whether an arrived QEMU must be resumed at its adoption: only one the move left paused (never one paused later). */
export function pausedByMove(status: string): boolean {
  return status === 'paused' || status === 'prelaunch';
}

/**
 * The arrived guest's QEMU is still paused (the daemon died between removing the incoming marker and `cont`): it is
 * resumed now. Called only for an arrival past its incoming marker, before the guest is recorded here (nobody else
 * paused it). Answers whether it resumed it.
 */
async function runIfPaused(app: AppCore, name: string): Promise<boolean> {
  const qmp = await QmpConnection.connect(runtimePaths(app.paths.instanceDir(name)).qmp, { timeoutMs: 5_000 });
  try {
    if (!pausedByMove((await queryStatus(qmp)).status)) return false;
    await cont(qmp);
    return true;
  } finally {
    qmp.close();
  }
}

/**
 * The loop's part on the target: every arrival whose guest ran here and that the source did not adopt within the
 * adopt wait (or that no live step of this daemon knows: it restarted) is adopted here. An arrival whose QEMU is
 * gone (and that has no record) is removed: the guest never ran here for good, and the source resumes its own.
 */
export async function settleArrivals(app: AppCore, c: ClusterService, incoming: IncomingMoves, log: (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void): Promise<void> {
  for (const name of pendingArrivals(app.paths.instances)) {
    const a = readArrival(app, name);
    if (a === undefined) continue;
    const m = incoming.get(a.id);
    if (m !== undefined && (m.resumed === undefined || Date.now() - (m.resumed.resumedAt ?? 0) < adoptWaitMs())) continue;
    if (app.core.repos.instances.get(name) === undefined && !isOurQemu(a.process, a.instance.uuid)) {
      incoming.forget(a.id);
      rmSync(app.paths.instanceDir(name), { recursive: true, force: true });
      log('warn', 'move: the QEMU of an arrived guest is gone before its adoption; its directory is removed (the source keeps the guest)', { instance: name, from: a.from });
      continue;
    }
    incoming.forget(a.id);
    const r = await adoptArrival(app, c, a);
    incoming.remember(a.id, r.resumed ?? a.resumed);
    log(r.claimError === undefined ? 'info' : 'warn', 'move: the guest runs here and its source did not adopt it: adopted here', { instance: name, from: a.from, ...(r.claimError === undefined ? {} : { claimError: r.claimError }), ...(r.resumed === undefined ? {} : { resumedNow: 'its QEMU was still paused (the daemon died before its cont): resumed' }) });
  }
}
