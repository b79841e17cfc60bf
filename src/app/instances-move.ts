/**
 * Live moves between the hosts of a cluster (`virtnode move NAME --to HOST`). The owner runs the engine
 * (src/instances/migrate/move-instance.ts) against the target host's cluster API route MOVES_PEER_PATH, which runs
 * a MigrationTarget's steps and adopts the record. Once the guest runs on the target, the target records it and
 * moves its claim in etcd (its room goes with it) before the source quits its QEMU and forgets the instance. A
 * crash on either side after the switch is survived: the target adopts on its own (move-arrivals.ts), the source
 * asks what it did not hear and settles what it did not finish (move-settle.ts). A stopped VM moves offline
 * instead (instances-move-offline.ts).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Static } from 'typebox';
import type { MoveBody } from '../api/contracts/instances.ts';
import type { InstanceView } from '../api/schemas.ts';
import type { HostRecord } from '../cluster/model.ts';
import type { PeerRoute } from '../cluster/peer-http.ts';
import { PLACEMENT_KEYS, type Claim, overcommitRatios, readCandidates, unfit } from '../cluster/placement.ts';
import { markMoving, unmarkMoving } from '../cluster/move-mark.ts';
import { type ClusterService, checkHostName } from '../cluster/service.ts';
import { checkMemoryMovesLive, checkMovable, defaultTransfers, type InstanceMoveTarget, moveInstanceOut, OUTGOING_MARKER } from '../instances/migrate/move-instance.ts';
import type { MigrationOffer, MigrationProgress, TargetReady, TargetResumed } from '../instances/migrate/protocol.ts';
import { MigrationTarget } from '../instances/migrate/target.ts';
import { type CarriedSeed, readSeed, withSeedDir } from '../instances/migrate/carried-seed.ts';
import type { Instance } from '../instances/model.ts';
import { type MovingNic, movingNics } from '../network/movable.ts';
import type { InstancePolicy } from '../store/policies.ts';
import { VirtnodeError, invalid, isVirtnodeError, toVirtnodeError } from '../lib/errors.ts';
import { failpoint } from '../lib/failpoint.ts';
import type { AppCore } from './context.ts';
import { checkIncoming, localBase, type MoveInput, type MoveOutcome, type NeededBase, offerWithBootFilesHere } from './move-common.ts';
import { IncomingMoves, adoptArrival, arrivedHere, readArrival, statusWaitMs, writeArrival } from './move-arrivals.ts';
import { type MoveStatus, resumedAfterAll } from './move-settle.ts';
import { checkSharedHere, type SharedDisk, sharedDisksOf, sharedTransfers } from './move-shared-disks.ts';

export type { MoveInput, MoveOutcome } from './move-common.ts';
import { OFFLINE_MOVABLE_STATES } from './offline-states.ts';
import { type Job, job } from './operations.ts';

/** The cluster API route through which a source host drives the target's side of a move. */
export const MOVES_PEER_PATH = '/v1/moves';


type Step =
  | { step: 'check'; name: string; bases: NeededBase[]; nics?: MovingNic[]; shared?: SharedDisk[] }
  // `from`, `instance`, `policy`: what the target needs to adopt the guest on its own once it runs there.
  | { step: 'prepare'; name: string; offer: MigrationOffer; seed?: CarriedSeed; nics?: MovingNic[]; from: string; instance: Instance; policy: InstancePolicy }
  | { step: 'resume' | 'recover'; id: string }
  | { step: 'status'; id: string; name: string; uuid: string }
  | { step: 'abort'; id: string; name?: string; reason: string }
  | { step: 'adopt'; id: string; instance: Instance; policy: InstancePolicy };

const MIB = 1024 * 1024;
const DEFAULT_TIMEOUT_S = 600;
const STEP_MS = 60_000;
/** The target's prepare creates disks (and may wait for a base): longer than a plain step. */
const PREPARE_MS = 300_000;
/** How long a post-copy whose link dropped keeps asking the target to recover; each try's own limit. */
const RECOVER_MS = 10 * 60_000;
const RECOVER_TRY_MS = 10_000;
/** Each `status` call's own limit (the target answers from memory or its instance directory). */
const STATUS_TRY_MS = 10_000;
/** A prepared target whose source never came back (crashed, cut off) gives up after this long, unless the guest ran there. */
const ABANDONED_MS = 30 * 60_000;

/**
 * The target host's side: the protocol's steps for moves coming here, and the adoption of their records. Once the
 * guest runs here the move is never aborted; its adoption is the source's adopt step or this host's own
 * (src/app/move-arrivals.ts).
 */
export function movesPeerRoute(app: AppCore, cluster: () => ClusterService, incoming: IncomingMoves = new IncomingMoves()): PeerRoute {
  const under = (id: unknown) => {
    const m = incoming.get(id);
    if (m === undefined) throw new VirtnodeError('NOT_FOUND', `no move ${String(id)} is under way on host ${cluster().host}`);
    return m;
  };
  return {
    handle: async (body) => {
      const req = body as Step;
      const c = cluster();
      switch (req.step) {
        case 'check':
          await checkIncoming(app, c, req.name, req.bases, req.nics);
          checkSharedHere(app, c, req.shared ?? []);
          return {};
        case 'prepare': {
          const nics = req.nics ?? [];
          await checkIncoming(app, c, req.name, [], nics);
          const target = new MigrationTarget({
            dir: app.paths.instanceDir(req.name),
            listenHost: c.config!.address,
            // The taps of its NICs on bridged networks, on this host's bridges, before its QEMU opens them.
            ...(nics.length === 0 ? {} : { prepareHost: (offer: MigrationOffer) => app.core.networks.prepareArrivingTaps({ name: req.name, uuid: offer.vm.uuid }, nics, { multiQueue: multiQueueTaps(offer) }) }),
            fetchBase: async (base) => {
              const path = localBase(app, base.sha256);
              if (path === undefined) throw new VirtnodeError('HOST_UNSUPPORTED', `disks: host ${c.host} has no image with sha256 ${base.sha256}`, { field: 'disks' });
              return { path, fetchedNow: false };
            },
          });
          const seedDir = join(app.paths.instanceDir(req.name), 'seed');
          const offered = offerWithBootFilesHere(app, req.offer);
          const offer = req.seed === undefined ? offered : withSeedDir(offered, req.seed.from, seedDir);
          const ready: TargetReady = await target.prepare(offer);
          try {
            if (req.seed !== undefined) {
              mkdirSync(seedDir, { mode: 0o700 });
              for (const [file, text] of Object.entries(req.seed.files)) writeFileSync(join(seedDir, file), text, { mode: 0o600 });
            }
            writeArrival(app, { id: req.offer.id, name: req.name, from: req.from, instance: req.instance, policy: req.policy, process: target.process!, placedDisks: { ...target.placedDisks }, fetchedBases: { ...target.fetchedBases } });
          } catch (e) {
            await target.abort('the seed or the arrival record could not be written');
            throw e;
          }
          const timer = setTimeout(() => {
            const m = incoming.get(req.offer.id);
            if (m === undefined || m.resuming || m.resumed !== undefined) return;
            incoming.forget(req.offer.id);
            void target.abort('the source did not finish the move').catch(() => undefined);
          }, ABANDONED_MS);
          timer.unref();
          incoming.set(req.offer.id, { target, name: req.name, timer, resuming: false });
          return ready;
        }
        case 'resume': {
          const m = under(req.id);
          m.resuming = true;
          let resumed: TargetResumed;
          try {
            resumed = await m.target.resume();
          } finally {
            m.resuming = false;
          }
          // The guest runs here: this host adopts it if the source does not come back (move-arrivals.ts).
          m.resumed = resumed;
          clearTimeout(m.timer);
          const arrival = readArrival(app, m.name);
          if (arrival !== undefined) {
            try {
              writeArrival(app, { ...arrival, resumed });
            } catch {
              /* the arrival without its times is as good for the adoption */
            }
          }
          failpoint('move.target-after-resume');
          return resumed;
        }
        case 'recover':
          return { uri: await under(req.id).target.recover() };
        case 'status':
          return moveStatus(app, incoming, req.id, req.name, req.uuid);
        case 'abort': {
          const m = incoming.get(req.id);
          if (m === undefined) {
            if (req.name !== undefined && arrivedHere(app, req.id, req.name) !== undefined) {
              throw new VirtnodeError('INVALID_STATE', 'the guest already runs on the target; it cannot be aborted');
            }
            return {};
          }
          try {
            await m.target.abort(req.reason);
          } catch (e) {
            // Refused: the guest runs here (or is being resumed); the move stays, for its adoption.
            if (m.resuming || m.resumed !== undefined || isVirtnodeError(e, 'INVALID_STATE')) throw e;
            incoming.forget(req.id);
            throw e;
          }
          incoming.forget(req.id);
          return {};
        }
        case 'adopt': {
          const name = req.instance.name;
          const arrival = readArrival(app, name);
          if (arrival?.id !== req.id) {
            // Adopted already (by this host on its own): the record is here.
            if (app.core.repos.instances.get(name)?.uuid === req.instance.uuid) return {};
            throw new VirtnodeError('NOT_FOUND', `no move ${req.id} is under way on host ${c.host}`);
          }
          incoming.forget(req.id);
          const r = await adoptArrival(app, c, { ...arrival, instance: req.instance, policy: req.policy });
          incoming.remember(req.id, r.resumed ?? arrival.resumed);
          return r;
        }
        default:
          throw invalid('step', 'not a step of a move');
      }
    },
  };
}

/**
 * The `status` step: what became of move `id` here, from this daemon's memory, else the instance directory. The
 * guest's resume time is this host's own (its resume step's, or its adoption's when that resumed it); when this
 * daemon no longer knows it (it restarted), it is left out: the source reports the downtime as unknown.
 */
export function moveStatus(app: AppCore, incoming: IncomingMoves, id: string, name: string, uuid: string): MoveStatus {
  const m = incoming.get(id);
  if (m !== undefined) {
    if (m.resumed !== undefined) return { state: 'running', resumed: m.resumed };
    return { state: m.resuming ? 'resuming' : 'prepared' };
  }
  const arrival = arrivedHere(app, id, name);
  if (arrival !== undefined) return { state: 'running', resumed: arrival.resumed ?? incoming.resumedOf(id) ?? { pid: arrival.process.pid } };
  const record = app.core.repos.instances.get(name);
  if (record?.uuid === uuid && record.pid !== undefined) return { state: 'running', resumed: incoming.resumedOf(id) ?? { pid: record.pid } };
  return { state: 'unknown' };
}

/** The guest's NICs are multi-queue (their taps must be too). */
function multiQueueTaps(offer: MigrationOffer): boolean {
  return offer.vm.nics.some((n) => n.backend.kind === 'tap' && (n.backend.queues ?? 1) > 1);
}

/** The source's view of the target host: each step a call to its cluster API; adopting also moves the claim. */
function peerTarget(
  c: ClusterService,
  to: HostRecord,
  name: string,
  carried: { seed: CarriedSeed | undefined; policy: InstancePolicy; nics: MovingNic[]; record: () => Instance; mark: (id: string) => Promise<void> },
  claimMoved: (error?: unknown) => void,
  /** Why a try at recovery failed, each time the reason changes (the move waits on it, so it is said). */
  recoveryRetry: (reason: string) => void,
): InstanceMoveTarget {
  const { seed, policy, nics, record, mark } = carried;
  let id: string | undefined;
  const call = <T>(step: Step, timeoutMs = STEP_MS) => c.peer<T>(to, MOVES_PEER_PATH, step, timeoutMs);
  const current = () => {
    if (id === undefined) throw new VirtnodeError('INVALID_STATE', 'the target was not prepared');
    return id;
  };
  return {
    // The claim is marked "moving to the target" first: from then on failover leaves the instance to the move.
    prepare: async (offer) => {
      id = offer.id;
      await mark(offer.id);
      return call<TargetReady>(
        { step: 'prepare', name, offer, from: c.host!, instance: record(), policy, ...(seed === undefined ? {} : { seed }), ...(nics.length === 0 ? {} : { nics }) },
        PREPARE_MS,
      );
    },
    // No answer (a timeout, a reset): the guest may run on the target or not. Not guessed: asked.
    resume: async () => {
      try {
        return await call<TargetResumed>({ step: 'resume', id: current() }, 2 * STEP_MS);
      } catch (e) {
        const step: Step = { step: 'status', id: current(), name, uuid: record().uuid };
        return resumedAfterAll(e, () => call<MoveStatus>(step, STATUS_TRY_MS), statusWaitMs());
      }
    },
    // The link to the target has just dropped: asked again until it answers (post-copy cannot be undone).
    recover: async () => {
      const deadline = Date.now() + RECOVER_MS;
      let lastReason: string | undefined;
      for (;;) {
        try {
          return (await call<{ uri: string }>({ step: 'recover', id: current() }, RECOVER_TRY_MS)).uri;
        } catch (e) {
          if (Date.now() > deadline) throw e;
          const reason = (e as Error).message;
          if (reason !== lastReason) recoveryRetry((lastReason = reason));
          await new Promise((r) => setTimeout(r, 1_000));
        }
      }
    },
    abort: async (reason) => {
      if (id !== undefined) await call({ step: 'abort', id, name, reason });
    },
    // No signal: once the guest runs on the target, its record must get there whatever the caller wants. The
    // target records it and moves its claim from this host (as it would on its own if this host died now).
    adopt: async (instance) => {
      const r = await call<{ claimError?: string }>({ step: 'adopt', id: current(), instance, policy });
      claimMoved(r.claimError === undefined ? undefined : new Error(r.claimError));
    },
  };
}

function notConvergingDetail(postcopy: boolean): string {
  return `memory: not converging at this rate (the guest dirties memory as fast as it is sent); ${postcopy ? 'post-copy takes over once pre-copy stalls' : "auto-converge slows the guest's vCPUs until it does"}`;
}

function progressDetail(p: MigrationProgress, to: string): string {
  const mib = (n: number) => `${Math.round(n / MIB)} MiB`;
  switch (p.phase) {
    case 'preparing':
      return `on ${to}`;
    case 'mirroring':
      return `disks: ${mib(p.diskBytesDone)} of ${mib(p.diskBytesTotal)}`;
    case 'recovering':
      return `the link to ${to} dropped during post-copy; both sides paused until ${to} answers again`;
    case 'migrating':
    case 'postcopy':
      return `memory: ${mib(p.bytesSent)} sent, ${mib(p.bytesRemaining)} left, ${Math.round(p.dirtyPagesPerSecond)} pages/s dirtied`;
    default:
      return '';
  }
}

/**
 * The move of an instance this host runs, checked now (each refusal names its field and changes nothing), then
 * done as an operation whose phases are the engine's. `viewOn` asks a host for the instance's view.
 */
export async function moveOwned(app: AppCore, c: ClusterService, input: MoveInput, viewOn: (host: string, name: string) => Promise<InstanceView>): Promise<Job<MoveOutcome>> {
  c.refuseWhileFenced('move');
  const instance = await app.instances.get(input.name);
  const name = instance.name;
  const from = c.host!;
  const to = checkHostName('host', input.host);
  if (to === from) throw invalid('host', `${name} runs on ${to} already`, 'choose another host of the cluster (`virtnode cluster ls`)');
  const hint = 'see `virtnode cluster ls`; choose another host';
  const record = await c.usableHostRecord(to, 'host', hint);
  const kv = c.kv();
  const offline = instance.state !== 'running' && OFFLINE_MOVABLE_STATES.has(instance.state);
  if (input.offline === true && !offline) {
    throw new VirtnodeError('INVALID_STATE', `${name} is ${instance.state}; --offline moves only a stopped, defined or crashed VM`, {
      field: 'offline',
      hint: `stop it first (\`virtnode stop ${name}\`), or move it live without --offline`,
    });
  }
  const nics = movingNics(instance.nics, (n) => app.core.networks.mustGet(n));
  if (!offline) {
    checkMovable(instance, nics);
    await checkMemoryMovesLive(instance, app.paths.instanceDir(instance.name));
  }
  const claimEntry = await kv.get(PLACEMENT_KEYS.claim(name));
  if (claimEntry === undefined) throw new VirtnodeError('INVALID_STATE', `${name} has no placement claim in the cluster (it was not launched in it)`, { field: 'name' });
  const claim = JSON.parse(claimEntry.value) as Claim;
  const candidate = (await readCandidates(kv)).find((x) => x.host.name === to);
  const why = candidate === undefined ? 'not in the cluster' : unfit(candidate, { instance: name, cpus: claim.cpus, memoryBytes: claim.memoryBytes, diskBytes: claim.diskBytes, pool: claim.pool }, overcommitRatios());
  if (why !== undefined) {
    throw new VirtnodeError('CONFLICT', `host: ${to} has no room for ${name} (${claim.cpus} CPU(s), ${Math.round(claim.memoryBytes / MIB)} MiB): ${why}`, { field: 'host', hint });
  }
  if (offline) {
    const { moveOffline } = await import('./instances-move-offline.ts');
    return moveOffline(app, c, instance, input, record, viewOn);
  }
  // Disks on shared pools stay where they are (the target opens the same file); the others are mirrored.
  const shared = await sharedDisksOf(app, instance);
  const transfers = { ...(await defaultTransfers(instance, sharedTransfers(shared), { live: true })), ...sharedTransfers(shared) };
  const bases: NeededBase[] = [];
  for (const [disk, t] of Object.entries(transfers)) if (t.kind === 'copy' && t.base !== undefined) bases.push({ disk, image: instance.spec.image?.name ?? '?', sha256: t.base.sha256 });
  await c.peer(record, MOVES_PEER_PATH, { step: 'check', name, bases, ...(nics.length === 0 ? {} : { nics }), ...(shared.length === 0 ? {} : { shared }) } satisfies Step, STEP_MS);

  const timeoutS = input.timeoutSeconds ?? DEFAULT_TIMEOUT_S;
  return job('move', `instances/${name}`, async (ctx) => {
    let claimError: unknown;
    // The record, not the name: no etcd read in each step (the resume step is in the guest's downtime).
    const current = () => {
      const r = app.core.repos.instances.get(name);
      if (r === undefined) throw new VirtnodeError('NOT_FOUND', `no instance named "${name}"`, { field: 'name' });
      return r;
    };
    let marked: string | undefined;
    const mark = async (id: string) => {
      await markMoving(kv, name, from, to, id);
      marked = id;
    };
    const target = peerTarget(
      c,
      record,
      name,
      { seed: readSeed(instance.spec.httpSeedDir), policy: app.policies.get(name), nics, record: current, mark },
      (e) => (claimError = e),
      (reason) => ctx.phase('recovering', `${to} could not listen again yet, asked again each second: ${reason}`),
    );
    let phase: string | undefined;
    let notConverging = false;
    const timeout = AbortSignal.timeout(timeoutS * 1000);
    const result = await moveInstanceOut(app.core, name, target, {
      to,
      transfers: sharedTransfers(shared),
      signal: AbortSignal.any([ctx.signal, timeout]),
      postcopy: input.postcopy ?? 'never',
      // Allowed post-copy replaces auto-converge: rather than throttle the guest's vCPUs round after round (which
      // may still not converge), the move switches to post-copy once pre-copy stalls.
      autoConverge: input.postcopy !== 'auto',
      ...(input.bandwidthMiBs === undefined ? {} : { maxBandwidth: input.bandwidthMiBs * MIB }),
      ...(input.downtimeLimitMs === undefined ? {} : { downtimeLimitMs: input.downtimeLimitMs }),
      onProgress: (p) => {
        if (p.phase !== phase) ctx.phase((phase = p.phase), progressDetail(p, to));
        // Said once per spell: the guest dirties memory as fast as it is sent, so no time left can be given.
        if (p.phase === 'migrating' && p.converging === false && !notConverging) ctx.phase(p.phase, notConvergingDetail(input.postcopy === 'auto'));
        notConverging = p.converging === false;
        if (p.phase === 'migrating' || p.phase === 'postcopy') ctx.transfer(p.bytesSent, p.bytesSent + p.bytesRemaining, p.expectedRemainingMs === undefined ? undefined : Math.round(p.expectedRemainingMs / 100) / 10);
        else if (p.phase === 'mirroring') ctx.transfer(p.diskBytesDone, p.diskBytesTotal);
      },
    }).catch(async (e: unknown) => {
      // Undone (the guest runs here, the engine removed its marker): the claim's mark goes. Kept while the outcome
      // is unknown (the settling of moves removes it when it undoes the move).
      if (marked !== undefined && !existsSync(join(app.paths.instanceDir(name), OUTGOING_MARKER)) && app.core.repos.instances.get(name)?.state === 'running') {
        await unmarkMoving(kv, name, marked).catch(() => undefined);
      }
      // Said plainly when the engine undid the move: the guest runs where it was. (Not after the switch to
      // post-copy: the guest ran on the target then, and the engine's error says what became of it.)
      if (phase === 'postcopy' || phase === 'recovering' || app.core.repos.instances.get(name)?.state !== 'running') throw e;
      const err = toVirtnodeError(e);
      // The engine kept its marker: the target never said whether the guest runs there (src/app/move-settle.ts).
      if (existsSync(join(app.paths.instanceDir(name), OUTGOING_MARKER))) {
        throw new VirtnodeError(err.code, `the move of ${name} to ${to} did not end clearly: ${err.message}; ${name} stays paused on ${from} until ${to} answers, then runs on whichever host has it (never on both)`, {
          cause: e,
          hint: `\`virtnode list\` shows where it runs; ${to} adopts it on its own if it runs there`,
        });
      }
      throw new VirtnodeError(err.code, `the move of ${name} to ${to} ${ctx.signal.aborted ? 'was cancelled' : timeout.aborted ? `was given up after ${timeoutS} s (the timeout)` : 'failed'}${phase === undefined ? '' : ` while ${phase}`}; ${name} keeps running on ${from}: ${err.message}`, {
        cause: e,
        ...(err.hint === undefined ? {} : { hint: err.hint }),
        ...(err.field === undefined ? {} : { field: err.field }),
      });
    });
    app.changed();
    if (claimError !== undefined) {
      throw new VirtnodeError('INVALID_STATE', `${name} runs on ${to} now, but its placement claim still names ${from}: ${claimError instanceof Error ? claimError.message : String(claimError)}`, {
        hint: 'requests about it go to the host its claim names: fix the claim in etcd once it answers',
      });
    }
    ctx.phase('moved', `runs on ${to}${result.postcopy ? ' (switched to post-copy)' : ''}; downtime ${result.downtimeMs === undefined ? 'unknown' : `${Math.round(result.downtimeMs)} ms`}, ${Math.round(result.totalMs)} ms in all`);
    return {
      instance: await viewOn(to, name),
      from,
      to,
      totalMs: Math.round(result.totalMs),
      migrationMs: Math.round(result.migrationMs),
      downtimeMs: result.downtimeMs === undefined ? null : Math.round(result.downtimeMs),
      bytesSent: result.bytesSent,
      diskBytes: result.diskBytes,
      postcopy: result.postcopy,
      offline: false,
      ...(result.switchover === undefined ? {} : { switchover: result.switchover }),
    };
  });
}
