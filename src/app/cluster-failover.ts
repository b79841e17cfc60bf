/**
 * Surviving a dead host. A failover candidate is a VM whose restart policy is on-failure or always and whose disks
 * are all on shared pools. Its owner publishes its record (what a live move's adopt step sends: the instance, its
 * policy, its HTTP seed) under `/virtnode/failover/NAME` and keeps it current. A host that fences itself (its lease
 * not renewed for 2/3 of the TTL) ends its candidates' QEMUs at once, before the lease can expire. Every daemon
 * watches the hosts' leases: when a host's lease is gone, its running candidates are placed on a live host, and
 * the claim, the disk ownership and the record move to it in one revision-guarded transaction (of all daemons
 * racing, one wins); the chosen host sees the record name it, adopts the instance and starts it from the shared
 * disk. The disk ownership in etcd (src/cluster/disk-ownership-etcd.ts) keeps a second copy from opening the disk.
 *
 * A live move in progress marks the claim "moving to TARGET" (src/cluster/move-mark.ts): the guest may run on the
 * target any moment (it adopts it on its own when its source is gone, src/app/move-arrivals.ts). Such an instance
 * is not failed over while the target holds its lease and runs the guest, is resuming it, or does not answer; a
 * move the target only prepared is aborted there first. Only once the target has no copy, or has no lease either
 * (then its own fencing ended the arrived guest, as it ends its candidates, before its lease could expire), does
 * the failover go ahead, guarded by both hosts holding no lease.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DISK_KEYS } from '../cluster/disk-ownership-etcd.ts';
import type { KvEntry, KvGuard } from '../cluster/kv.ts';
import { KEYS } from '../cluster/model.ts';
import { type Claim, PLACEMENT_KEYS, choose, moveClaim, overcommitRatios, readCandidates } from '../cluster/placement.ts';
import type { ClusterService } from '../cluster/service.ts';
import { releaseDisks } from '../instances/disk-claims.ts';
import { type CarriedSeed, readSeed } from '../instances/migrate/carried-seed.ts';
import type { Instance } from '../instances/model.ts';
import { toVirtnodeError } from '../lib/errors.ts';
import { isAlive } from '../lib/proc.ts';
import { isOurQemu } from '../qemu/process.ts';
import { pendingArrivals } from '../instances/migrate/stale-incoming.ts';
import { MOVES_PEER_PATH } from './instances-move.ts';
import { readArrival } from './move-arrivals.ts';
import type { MoveStatus } from './move-settle.ts';
import { diskKey } from '../qemu/protocol-node.ts';
import type { InstancePolicy } from '../store/policies.ts';
import { serialPasses } from '../lib/serial-passes.ts';
import { isSharedDisk } from './cluster-shared-disks.ts';
import type { AppCore } from './context.ts';

export const FAILOVER_KEYS = {
  record: (name: string) => `/virtnode/failover/${name}`,
  records: '/virtnode/failover/',
  /** Left behind on HOST: the instance failed over away from it; its copy there (stopped) is to be forgotten. */
  left: KEYS.leftBehind,
  leftOn: KEYS.leftBehindOn,
} as const;

/** What `/virtnode/failover-left/HOST/NAME` holds. */
export interface LeftRecord {
  to: string;
  at: string;
}

/** What `/virtnode/failover/NAME` holds. */
export interface FailoverRecord {
  /** The host that owns the instance (after a failover: the host chosen to run it). */
  host: string;
  instance: Instance;
  policy: InstancePolicy;
  seed?: CarriedSeed;
  /** It ran (or was starting) on its owner: only such instances are started elsewhere when the owner dies. */
  running: boolean;
  /** The ids (diskKey) of its disks, all on shared pools. */
  disks: string[];
  /**
   * Set by the failover transaction: `host` is to adopt it, and start it if it was running (`running`). `tried`:
   * hosts that adopted it and could not start it (each passed it on), which are not chosen again.
   */
  failover?: { from: string; at: string; tried?: string[] };
}

export const FENCED_REASON = 'killed by self-fencing';
const LOOP_MS = 1000;
/** Each call to a live move's target (its `status`, its `abort`). */
const STATUS_MS = 5000;
const SYNC_MS = 5000;

const RUNNING_STATES = new Set(['running', 'paused', 'starting']);

/** Whether `instance` fails over to another host when its own dies (restart policy, VM, every disk shared). */
export function isCandidate(app: AppCore, instance: Instance, policy: InstancePolicy): boolean {
  if (policy.restart === 'no' || instance.type !== 'vm' || instance.spec.disks.length === 0) return false;
  return instance.spec.disks.every((d) => isSharedDisk(app, diskKey(d.path)));
}

function recordOf(app: AppCore, host: string, instance: Instance, policy: InstancePolicy): FailoverRecord {
  const { pid: _pid, pidStart: _start, updatedAt: _updated, ...rest } = instance;
  const seed = readSeed(instance.spec.httpSeedDir);
  return {
    host,
    instance: { ...rest, pid: undefined, pidStart: undefined, updatedAt: instance.createdAt } as Instance,
    policy,
    ...(seed === undefined ? {} : { seed }),
    running: RUNNING_STATES.has(instance.state),
    disks: instance.spec.disks.map((d) => diskKey(d.path)),
  };
}

const parse = (e: KvEntry) => JSON.parse(e.value) as FailoverRecord;
/** What failover last said about each instance it holds for a live move (so it is said once). */
const held = new Map<string, string>();
const log = (c: ClusterService, level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}) =>
  process.stderr.write(`${JSON.stringify({ level, msg, component: 'failover', host: c.host, at: new Date().toISOString(), ...fields })}\n`);

/**
 * Self-fencing's part: ends the QEMU of every running failover candidate here and records why, synchronously (no
 * await between the kill and the record, so the supervisor never sees a crash to restart). Others keep running.
 */
export function fenceCandidates(app: AppCore, c: ClusterService, reason: string): string[] {
  const ended: string[] = [];
  const policies = app.policies.all();
  for (const instance of app.instances.repo.list()) {
    const policy = policies.get(instance.name);
    if (policy === undefined || !RUNNING_STATES.has(instance.state) || !isCandidate(app, instance, policy)) continue;
    if (instance.pid !== undefined && instance.pidStart !== undefined && isAlive({ pid: instance.pid, start: instance.pidStart })) {
      try {
        process.kill(instance.pid, 'SIGKILL');
      } catch {
        /* ended meanwhile */
      }
    }
    app.instances.repo.setProcess(instance.name, undefined, undefined);
    app.instances.repo.setState(instance.name, 'stopped', `${FENCED_REASON}: ${reason} (another host may run it now)`);
    ended.push(instance.name);
  }
  // Guests arriving here by a live move (not recorded yet): another host may run a candidate once this lease is
  // gone, so its arrived copy ends too. Its source keeps its own, or fails it over (move-settle.ts, failover).
  const arrivals: string[] = [];
  for (const name of pendingArrivals(app.paths.instances)) {
    const a = readArrival(app, name);
    if (a === undefined || app.instances.repo.get(name) !== undefined || !isCandidate(app, a.instance, a.policy) || !isOurQemu(a.process, a.instance.uuid)) continue;
    try {
      process.kill(a.process.pid, 'SIGKILL');
      arrivals.push(name);
    } catch {
      /* ended meanwhile */
    }
  }
  if (arrivals.length > 0) log(c, 'error', 'fenced: guests arriving by a live move stopped before the lease can expire', { instances: arrivals, reason });
  if (ended.length > 0) log(c, 'error', 'fenced: failover candidates stopped before the lease can expire', { instances: ended, reason });
  // Tidy up afterwards (runtime files, NICs, this host's disk guard); etcd may not answer, which changes nothing.
  for (const name of ended) {
    const instance = app.instances.repo.get(name);
    if (instance === undefined) continue;
    void (async () => {
      const driver = app.instances.driver(instance);
      await driver.kill(instance).catch(() => undefined);
      driver.clearRuntime(instance);
      await app.core.networks.releaseInstance(instance).catch(() => undefined);
      await releaseDisks(app.core, instance).catch(() => undefined);
    })();
  }
  return ended;
}

/** Keeps this host's failover records as its instances are: put candidates, remove the rest (never another host's). */
export async function syncFailoverRecords(app: AppCore, c: ClusterService): Promise<void> {
  const host = c.host;
  if (host === undefined || c.fenced !== undefined) return;
  const kv = c.localKv();
  await forgetLeftBehind(app, c);
  const { entries } = await kv.list(FAILOVER_KEYS.records);
  const existing = new Map(entries.map((e) => [e.key.slice(FAILOVER_KEYS.records.length), e]));
  const policies = app.policies.all();
  const mine = new Set<string>();
  for (const instance of app.instances.repo.list()) {
    const entry = existing.get(instance.name);
    const current = entry === undefined ? undefined : parse(entry);
    if (current !== undefined && current.host !== host) {
      // Moved here live while its source was gone (the source never dropped its record): this host's now.
      if (current.failover !== undefined || !(await claimedHere(c, instance.name))) {
        await forgetFailedOver(app, c, instance, current);
        continue;
      }
      const policy = policies.get(instance.name);
      if (policy === undefined || !isCandidate(app, instance, policy)) {
        // Not a candidate here (its disks were copied to this host's own pool): the source's stale record goes.
        await kv.txn([{ key: entry!.key, modRevision: entry!.modRevision }], [{ delete: entry!.key }]);
        continue;
      }
    }
    const policy = policies.get(instance.name);
    if (policy === undefined || !isCandidate(app, instance, policy)) continue;
    mine.add(instance.name);
    if (instance.stateReason?.startsWith(FENCED_REASON) === true && !RUNNING_STATES.has(instance.state)) {
      // Fenced and ended here, and no other host took it over meanwhile (the record still names this host).
      await restartAfterFence(app, c, instance.name);
      continue;
    }
    const record = recordOf(app, host, instance, policy);
    if (current !== undefined && current.failover === undefined && JSON.stringify(current) === JSON.stringify(record)) continue;
    await kv.txn([{ key: FAILOVER_KEYS.record(instance.name), modRevision: entry?.modRevision ?? 0 }], [{ put: FAILOVER_KEYS.record(instance.name), value: JSON.stringify(record) }]);
  }
  for (const [name, entry] of existing) {
    const r = parse(entry);
    // A record being failed over to this host has no local instance yet: the loop adopts it.
    if (r.host !== host || mine.has(name) || r.failover !== undefined) continue;
    await kv.txn([{ key: entry.key, modRevision: entry.modRevision }], [{ delete: entry.key }]);
  }
}

async function claimedHere(c: ClusterService, name: string): Promise<boolean> {
  const claim = await c.localKv().get(PLACEMENT_KEYS.claim(name));
  return claim !== undefined && (JSON.parse(claim.value) as Claim).host === c.host;
}

/** The fence is lifted and the claim still names this host: its restart policy applies again. */
async function restartAfterFence(app: AppCore, c: ClusterService, name: string): Promise<void> {
  const claim = await c.localKv().get(PLACEMENT_KEYS.claim(name));
  if (claim === undefined || (JSON.parse(claim.value) as Claim).host !== c.host) return;
  try {
    await app.instances.start(name, { lockWaitMs: 30_000 });
    log(c, 'info', 'instance started again after the fence was lifted (no other host took it over)', { instance: name });
  } catch (e) {
    log(c, 'error', 'instance ended by the fence did not start again', { instance: name, err: toVirtnodeError(e).message });
  }
}

/**
 * This host fenced itself and ended `instance`; meanwhile another host took it over. The local record (a stopped
 * copy) is forgotten; its disks are on shared pools and now the other host's, so nothing else is removed.
 */
async function forgetFailedOver(app: AppCore, c: ClusterService, instance: Instance, current: FailoverRecord): Promise<void> {
  if (instance.stateReason?.startsWith(FENCED_REASON) !== true || RUNNING_STATES.has(instance.state)) return;
  const claim = await c.localKv().get(PLACEMENT_KEYS.claim(instance.name));
  if (claim === undefined || (JSON.parse(claim.value) as Claim).host === c.host) return;
  await app.core.withLock(instance.name, 'forget', { lockWaitMs: 1000 }, async () => {
    app.instances.repo.delete(instance.name);
    rmSync(app.paths.instanceDir(instance.name), { recursive: true, force: true });
  });
  log(c, 'info', 'instance forgotten here: it failed over to another host while this one was fenced', { instance: instance.name, now: current.host });
  app.changed();
}

/**
 * Copies left on this host by a failover (it was offline, or it adopted an instance it could not start and passed
 * it on): each is forgotten when it is not running, the instance being the other host's now; then the mark goes.
 */
async function forgetLeftBehind(app: AppCore, c: ClusterService): Promise<void> {
  const kv = c.localKv();
  const { entries } = await kv.list(FAILOVER_KEYS.leftOn(c.host!));
  for (const entry of entries) {
    const name = entry.key.slice(FAILOVER_KEYS.leftOn(c.host!).length);
    const left = JSON.parse(entry.value) as LeftRecord;
    const claim = await kv.get(PLACEMENT_KEYS.claim(name));
    if (claim !== undefined && (JSON.parse(claim.value) as Claim).host === c.host) {
      // It came back here since (a move, a restore): the mark is stale.
      await kv.txn([{ key: entry.key, modRevision: entry.modRevision }], [{ delete: entry.key }]);
      continue;
    }
    const instance = app.instances.repo.get(name);
    if (instance !== undefined) {
      if (RUNNING_STATES.has(instance.state)) {
        log(c, 'error', 'a copy of an instance that failed over to another host runs here: it is left alone, stop it (its disks are the other host’s now)', { instance: name, now: left.to });
        continue;
      }
      const gone = await app.core
        .withLock(name, 'forget', { lockWaitMs: 1000 }, async () => {
          const now = app.instances.repo.get(name);
          if (now === undefined || RUNNING_STATES.has(now.state)) return false;
          app.instances.repo.delete(name);
          rmSync(app.paths.instanceDir(name), { recursive: true, force: true });
          return true;
        })
        .catch(() => false);
      if (!gone) continue;
      log(c, 'info', 'instance forgotten here: it failed over to another host', { instance: name, now: left.to, at: left.at });
      app.changed();
    }
    await kv.txn([{ key: entry.key, modRevision: entry.modRevision }], [{ delete: entry.key }]);
  }
}

/**
 * The failover transaction: the claim, the disk ownership and the record of `name` move from `from` to `to`, and a
 * mark is left for `from` (its copy is to be forgotten), guarded by the record's revision and `guards`.
 */
async function handOver(c: ClusterService, entry: KvEntry, from: string, moved: FailoverRecord, guards: KvGuard[]): Promise<void> {
  const name = moved.instance.name;
  const left: LeftRecord = { to: moved.host, at: new Date().toISOString() };
  await moveClaim(
    c.localKv(),
    name,
    from,
    moved.host,
    () => ({
      guards: [{ key: entry.key, modRevision: entry.modRevision }, ...guards],
      writes: [
        { put: entry.key, value: JSON.stringify(moved) },
        { put: FAILOVER_KEYS.left(from, name), value: JSON.stringify(left) },
      ],
    }),
    { once: true, disks: 'move' },
  );
}

/**
 * A live move of a dead host's candidate to `claim.moving.to`, a live host: whether the target has no copy of the
 * guest (so failover may go ahead). Running, resuming there, or no answer: not (the target adopts the guest on its
 * own and moves the claim). Only prepared there: aborted first (a refused abort means it resumed it).
 */
async function moveLeftNoCopy(c: ClusterService, claim: Claim, uuid: string): Promise<boolean> {
  const mark = claim.moving!;
  const fields = { instance: claim.instance, from: claim.host, to: mark.to, move: mark.id };
  // Said once per move and answer, not on every pass.
  const say = (level: 'info' | 'warn', msg: string, more: Record<string, unknown>) => {
    const said = `${mark.id} ${msg}`;
    if (held.get(claim.instance) === said) return;
    held.set(claim.instance, said);
    log(c, level, msg, more);
  };
  let status: MoveStatus;
  try {
    status = await c.peer<MoveStatus>(mark.to, MOVES_PEER_PATH, { step: 'status', id: mark.id, name: claim.instance, uuid }, STATUS_MS);
  } catch (e) {
    say('warn', 'failover held: a live move of the instance to a live host is under way, and that host does not answer', { ...fields, err: toVirtnodeError(e).message });
    return false;
  }
  if (status.state === 'prepared') {
    try {
      await c.peer(mark.to, MOVES_PEER_PATH, { step: 'abort', id: mark.id, name: claim.instance, reason: 'its source host lost its lease; the instance fails over' }, STATUS_MS);
    } catch (e) {
      say('warn', 'failover held: the move\'s target did not abort it', { ...fields, err: toVirtnodeError(e).message });
      return false;
    }
    return true;
  }
  if (status.state === 'unknown') return true;
  say('info', 'failover held: the guest runs (or is resuming) on the target of its live move, which adopts it', { ...fields, state: status.state });
  return false;
}

/** Moves the candidates of dead hosts (running or not): one transaction each, of which one daemon wins. */
async function failOverDeadHosts(app: AppCore, c: ClusterService): Promise<void> {
  const kv = c.localKv();
  const [alive, records] = await Promise.all([kv.list(KEYS.alives), kv.list(FAILOVER_KEYS.records)]);
  const live = new Set(alive.entries.map((e) => e.key.slice(KEYS.alives.length)));
  for (const entry of records.entries) {
    const r = parse(entry);
    if (live.has(r.host)) continue;
    const name = r.instance.name;
    const claimEntry = await kv.get(PLACEMENT_KEYS.claim(name));
    if (claimEntry === undefined) continue;
    const claim = JSON.parse(claimEntry.value) as Claim;
    if (claim.host !== r.host) continue;
    const guards: KvGuard[] = [{ key: KEYS.alive(r.host), modRevision: 0 }];
    if (claim.moving !== undefined) {
      const mark = claim.moving;
      if (live.has(mark.to)) {
        if (!(await moveLeftNoCopy(c, claim, r.instance.uuid))) continue;
      } else {
        // Neither host holds a lease: each ended its copy (fencing) before it could expire. Guarded by both.
        guards.push({ key: KEYS.alive(mark.to), modRevision: 0 });
      }
    }
    const candidates = (await readCandidates(kv)).filter((x) => x.host.name !== r.host && x.host.name !== claim.moving?.to);
    // The disks are on the shared pool already: no room in a pool is needed, only CPUs and memory.
    const { chosen, refusals } = choose(candidates, { instance: name, cpus: claim.cpus, memoryBytes: claim.memoryBytes, diskBytes: 0 }, overcommitRatios());
    if (chosen === undefined) {
      log(c, 'warn', 'failover: no live host has room', { instance: name, from: r.host, refusals });
      continue;
    }
    const to = chosen.host.name;
    const at = new Date().toISOString();
    const moved: FailoverRecord = { ...r, host: to, failover: { from: r.host, at } };
    try {
      // The dead host (and a marked move's target without a lease) still holds no lease when this commits; the
      // claim's revision guards the rest (a target's adoption moves it).
      await handOver(c, entry, r.host, moved, guards);
      log(c, 'info', 'failover: instance placed on a live host (claim, disk ownership and record moved in one transaction)', { instance: name, from: r.host, to, running: r.running, disks: r.disks.map(DISK_KEYS.disk) });
    } catch (e) {
      log(c, 'info', 'failover: another host won the transaction, or it changed', { instance: name, err: toVirtnodeError(e).message });
    }
  }
}

/** On the chosen host: adopts each record failed over to it and starts the instance from its shared disks. */
async function adoptFailedOver(app: AppCore, c: ClusterService): Promise<void> {
  const kv = c.localKv();
  const { entries } = await kv.list(FAILOVER_KEYS.records);
  for (const entry of entries) {
    const r = parse(entry);
    if (r.host !== c.host || r.failover === undefined) continue;
    const name = r.instance.name;
    if (app.instances.repo.get(name) === undefined) {
      const dir = app.paths.instanceDir(name);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      let spec = r.instance.spec;
      if (r.seed !== undefined) {
        const seedDir = join(dir, 'seed');
        mkdirSync(seedDir, { recursive: true, mode: 0o700 });
        for (const [file, text] of Object.entries(r.seed.files)) writeFileSync(join(seedDir, file), text, { mode: 0o600 });
        spec = { ...spec, httpSeedDir: seedDir };
      }
      const { pid: _pid, pidStart: _start, createdAt: _created, updatedAt: _updated, ...record } = r.instance;
      const reason = r.running ? `failed over from ${r.failover.from} (its lease expired)` : `moved from ${r.failover.from} while stopped (its lease expired): start it here when wanted`;
      app.instances.repo.insert({ ...record, spec, state: 'stopped', stateReason: reason });
      app.policies.set(name, r.policy);
      log(c, 'info', 'failover: instance adopted', { instance: name, from: r.failover.from, running: r.running });
    }
    let started = false;
    if (r.running) {
      try {
        c.refuseWhileFenced('failover start');
        await app.instances.start(name, { lockWaitMs: 30_000 });
        started = true;
        log(c, 'info', 'failover: instance started here', { instance: name, from: r.failover.from, failedOverAt: r.failover.at });
      } catch (e) {
        const err = toVirtnodeError(e).message;
        log(c, 'error', 'failover: the adopted instance did not start', { instance: name, err });
        if (await passOn(app, c, entry, r, err)) continue;
      }
    }
    const now = app.instances.repo.get(name);
    if (now === undefined) continue;
    const done: FailoverRecord = { ...recordOf(app, c.host!, now, r.policy), running: started || r.running };
    await kv.txn([{ key: entry.key, modRevision: entry.modRevision }], [{ put: entry.key, value: JSON.stringify(done) }]);
    app.changed();
  }
}

/**
 * This host adopted a failed-over instance and could not start it: it goes on to another live host with room
 * (neither the dead host nor any that tried already), in the failover transaction, guarded by this host's lease;
 * the copy here is forgotten. Answers false when no other host can take it (it stays here, stopped, with why).
 */
async function passOn(app: AppCore, c: ClusterService, entry: KvEntry, r: FailoverRecord, err: string): Promise<boolean> {
  const kv = c.localKv();
  const name = r.instance.name;
  const tried = [...(r.failover?.tried ?? []), c.host!];
  const claimEntry = await kv.get(PLACEMENT_KEYS.claim(name));
  if (claimEntry === undefined) return false;
  const claim = JSON.parse(claimEntry.value) as Claim;
  const candidates = (await readCandidates(kv)).filter((x) => x.host.name !== r.failover?.from && !tried.includes(x.host.name));
  const { chosen, refusals } = choose(candidates, { instance: name, cpus: claim.cpus, memoryBytes: claim.memoryBytes, diskBytes: 0 }, overcommitRatios());
  if (chosen === undefined) {
    log(c, 'warn', 'failover: no other live host can take the instance this host could not start: it stays here, stopped', { instance: name, tried, refusals });
    app.instances.repo.setState(name, 'stopped', `failed over from ${r.failover?.from ?? '?'}, but it did not start on ${tried.join(', ')} (here: ${err}) and no other host has room`);
    return false;
  }
  const to = chosen.host.name;
  const moved: FailoverRecord = { ...r, host: to, failover: { from: r.failover?.from ?? c.host!, at: r.failover?.at ?? new Date().toISOString(), tried } };
  try {
    await handOver(c, entry, c.host!, moved, []);
  } catch (e) {
    log(c, 'warn', 'failover: passing the instance on failed', { instance: name, to, err: toVirtnodeError(e).message });
    return false;
  }
  log(c, 'info', 'failover: instance passed on to another host (it did not start here)', { instance: name, to, tried, err });
  await forgetLeftBehind(app, c);
  return true;
}

/** The daemon's failover work while it serves its membership: a loop, poked by etcd watches, and the record sync. */
export function failoverLoop(app: AppCore, c: ClusterService): { stop: () => Promise<void>; poke: () => void } {
  let lastSync = 0;
  const passes = serialPasses(
    async () => {
      if (c.fenced !== undefined) return;
      await adoptFailedOver(app, c);
      await failOverDeadHosts(app, c);
      if (Date.now() - lastSync > SYNC_MS) {
        lastSync = Date.now();
        await syncFailoverRecords(app, c);
      }
    },
    (e: unknown) => log(c, 'warn', 'failover pass failed', { err: toVirtnodeError(e).message }),
  );
  const poke = () => passes.request();
  const timer = setInterval(poke, LOOP_MS);
  timer.unref();
  const watches = Promise.all([KEYS.alives, FAILOVER_KEYS.records].map((prefix) => c.localKv().watch(prefix, () => poke()))).catch(() => []);
  poke();
  return {
    poke: () => {
      lastSync = 0;
      poke();
    },
    stop: async () => {
      clearInterval(timer);
      for (const w of await watches) await w.cancel().catch(() => undefined);
      await passes.stop();
    },
  };
}
