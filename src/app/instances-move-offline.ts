/**
 * Offline moves between the hosts of a cluster: a stopped VM (stopped, defined, crashed) goes to another host.
 * The owner holds the instance's lock throughout (no start meanwhile) and serves its disk files on the GET route
 * MOVE_DISKS_PEER_PREFIX, to the target host only; the target (route OFFLINE_MOVES_PEER_PATH) copies them into a
 * directory marked as an incoming move, checks size and sha256, rebases a linked clone onto its own copy of the
 * base (found or fetched by digest), then records the instance. Then the claim and its room move in one
 * revision-guarded etcd transaction, and only then does the source forget the instance. Disks on shared pools are
 * not copied: both hosts reach the same file.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { InstanceView } from '../api/schemas.ts';
import type { HostRecord } from '../cluster/model.ts';
import { fileSha256, peerDownloadVerified } from '../cluster/peer-files.ts';
import type { PeerFileRoute, PeerRoute } from '../cluster/peer-http.ts';
import { moveClaim, ownerOf } from '../cluster/placement.ts';
import type { ClusterService } from '../cluster/service.ts';
import { defaultTransfers } from '../instances/migrate/move-instance.ts';
import { type CarriedSeed, readSeed } from '../instances/migrate/carried-seed.ts';
import { foldOnto } from '../instances/migrate/offline-chain.ts';
import { INCOMING_MARKER } from '../instances/migrate/stale-incoming.ts';
import type { Instance } from '../instances/model.ts';
import { VirtnodeError, invalid, toVirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import { selfIdentity } from '../lib/proc.ts';
import { diskKey } from '../qemu/protocol-node.ts';
import { rebaseImage } from '../storage/qemu-img.ts';
import { checkNicsLeave, type MovingNic, movingNics } from '../network/movable.ts';
import type { InstancePolicy } from '../store/policies.ts';
import { isSharedDisk } from './cluster-shared-disks.ts';
import type { AppCore } from './context.ts';
import { imageFetchPlan } from './images-cluster.ts';
import { checkIncoming, localBase, type MoveInput, type MoveOutcome, withBootFilesHere } from './move-common.ts';
import { OFFLINE_MOVABLE_STATES } from './offline-states.ts';
import { type Job, job } from './operations.ts';

/** The target's side of an offline move (POST). */
export const OFFLINE_MOVES_PEER_PATH = '/v1/moves-offline';
/** The source's disk files of an instance under an offline move (GET `PREFIX<token>`; the token names instance and disk). */
export const MOVE_DISKS_PEER_PREFIX = '/v1/move-disks/';


/** A disk file the target copies: where it goes in its instance directory, and what its bytes must be. */
interface CopiedDisk {
  id: string;
  file: string;
  size: number;
  sha256: string;
  /** A linked clone: the digest of its base, resolved on the target. */
  base?: { sha256: string; image: string };
}

type Step =
  | { step: 'check'; name: string; bases: Array<{ sha256: string; image: string }>; nics?: MovingNic[] }
  | { step: 'receive'; id: string; name: string; disks: CopiedDisk[]; seed?: CarriedSeed }
  | { step: 'adopt'; id: string; instance: Instance; policy: InstancePolicy }
  | { step: 'abort' | 'done'; id: string; name: string };

const STEP_MS = 60_000;
/** How long a target keeps a copy (or a record) whose source never finished the move. */
const ABANDONED_MS = 30 * 60_000;
const DEFAULT_TIMEOUT_S = 600;
const MIB = 1024 * 1024;
const FILE_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** The outgoing offline moves of this host: instance → the host copying from it and the files it may read. */
const outgoing = new Map<string, { to: string; files: Map<string, { path: string; sha256: string }> }>();

const diskToken = (name: string, disk: string) => Buffer.from(JSON.stringify([name, disk])).toString('base64url');

/** The source's GET route: an instance's disk file, only while it moves offline and only to its target. */
export function moveDisksFileRoute(): PeerFileRoute {
  return {
    resolve: async (id, caller) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.from(id, 'base64url').toString('utf8'));
      } catch {
        throw invalid('disk', 'not a disk of a move');
      }
      if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[1] !== 'string') throw invalid('disk', 'not a disk of a move');
      const name = validateName('name', parsed[0]);
      const move = outgoing.get(name);
      if (move === undefined || move.to !== caller.host) throw new VirtnodeError('NOT_FOUND', `no offline move of ${name} to ${caller.host ?? '?'} is under way here`, { field: 'name' });
      const file = move.files.get(parsed[1]);
      if (file === undefined) throw new VirtnodeError('NOT_FOUND', `disk: ${name} has no disk ${parsed[1]} to copy`, { field: 'disk' });
      return { path: file.path, etag: `"${file.sha256}"` };
    },
  };
}

/** The marker of an incoming offline move (the same as a live one's: the host's reconcile removes it once its owner is gone). */
function markerOf(dir: string): { id?: string } | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, INCOMING_MARKER), 'utf8')) as { id?: string };
  } catch {
    return undefined;
  }
}

/** Resolves (or fetches from another host, by digest) the base of a linked clone on this host. */
async function baseHere(app: AppCore, base: { sha256: string; image: string }, instance: string, signal?: AbortSignal): Promise<string> {
  const path = localBase(app, base.sha256);
  if (path !== undefined) return path;
  const fetch = await imageFetchPlan(app, base.image, base.sha256);
  if (fetch !== undefined) await fetch.run({ id: `move-${instance}`, signal: signal ?? new AbortController().signal, phase: () => undefined, transfer: () => undefined });
  const fetched = localBase(app, base.sha256);
  if (fetched === undefined) throw new VirtnodeError('HOST_UNSUPPORTED', `disks: this host has no image with sha256 ${base.sha256}`, { field: 'disks' });
  return fetched;
}

/** The target host's side: check, receive the disks (copied, verified, rebased), adopt the record, abort. */
export function offlineMovesPeerRoute(app: AppCore, cluster: () => ClusterService): PeerRoute {
  /** Moves whose record this host has taken, until the source says the claim moved (done) or undoes them (abort). */
  const adopted = new Map<string, string>();
  /** What `receive` placed, by move id, for `adopt`: the disks' paths here and the base's. */
  const placedBy = new Map<string, { disks: Record<string, string>; imagePath?: string }>();
  /**
   * A source that never comes back (crashed, cut off) after `receive` or `adopt`: after ABANDONED_MS the copy is
   * removed, and an adopted record too unless the instance's claim names this host (the source moved it).
   */
  const abandon = (id: string, name: string) =>
    setTimeout(() => {
      void (async () => {
        const dir = app.paths.instanceDir(name);
        if (placedBy.delete(id) && markerOf(dir)?.id === id) rmSync(dir, { recursive: true, force: true });
        if (adopted.get(id) !== name) return;
        const c = cluster();
        if ((await ownerOf(c.kv(), name)) === c.host) return void adopted.delete(id);
        adopted.delete(id);
        app.core.repos.instances.delete(name);
        rmSync(dir, { recursive: true, force: true });
        app.changed();
      })().catch(() => undefined);
    }, ABANDONED_MS).unref();
  return {
    handle: async (body, caller) => {
      const req = body as Step;
      const c = cluster();
      switch (req.step) {
        case 'check': {
          await checkIncoming(app, c, req.name, [], req.nics);
          // A base this host lacks must be one it can fetch (imageFetchPlan refuses otherwise).
          for (const b of req.bases) if (localBase(app, b.sha256) === undefined) await imageFetchPlan(app, b.image, b.sha256);
          return {};
        }
        case 'receive': {
          await checkIncoming(app, c, req.name, []);
          const from = await c.hostRecord(caller.host ?? '', 'host');
          const dir = app.paths.instanceDir(req.name);
          const files = new Set<string>();
          for (const d of req.disks) {
            if (!FILE_RE.test(d.file) || d.file === INCOMING_MARKER || d.file === 'seed' || files.has(d.file)) throw invalid('disks', `${d.file} is not a disk file name`);
            files.add(d.file);
          }
          mkdirSync(dir, { recursive: true, mode: 0o700 });
          writeFileSync(join(dir, INCOMING_MARKER), `${JSON.stringify({ id: req.id, name: req.name, owner: selfIdentity() })}\n`);
          try {
            const placed: Record<string, string> = {};
            let imagePath: string | undefined;
            const tls = c.peerTls();
            for (const d of req.disks) {
              const path = join(dir, d.file);
              await peerDownloadVerified(new URL(`${MOVE_DISKS_PEER_PREFIX}${diskToken(req.name, d.id)}`, from.apiUrl).href, path, d, tls);
              if (d.base !== undefined) {
                imagePath = await baseHere(app, d.base, req.name);
                await rebaseImage(path, { path: imagePath, format: 'qcow2' }, { safe: false });
              }
              placed[d.id] = path;
            }
            if (req.seed !== undefined) {
              mkdirSync(join(dir, 'seed'), { mode: 0o700 });
              for (const [file, text] of Object.entries(req.seed.files)) {
                if (!FILE_RE.test(file)) throw invalid('seed', `${file} is not a seed file name`);
                writeFileSync(join(dir, 'seed', file), text, { mode: 0o600 });
              }
            }
            placedBy.set(req.id, { disks: placed, ...(imagePath === undefined ? {} : { imagePath }) });
            abandon(req.id, req.name);
            return {};
          } catch (e) {
            rmSync(dir, { recursive: true, force: true });
            throw e;
          }
        }
        case 'adopt': {
          const name = validateName('name', req.instance.name);
          const dir = app.paths.instanceDir(name);
          const placed = placedBy.get(req.id);
          if (placed === undefined || markerOf(dir)?.id !== req.id) throw new VirtnodeError('NOT_FOUND', `no offline move ${req.id} of ${name} is under way on host ${c.host}`);
          placedBy.delete(req.id);
          const { pid: _pid, pidStart: _pidStart, createdAt: _created, updatedAt: _updated, ...record } = withBootFilesHere(app, req.instance);
          // This host's paths: the copied disks, its own base, its seed directory; shared disks stay where they are.
          const image = record.spec.image;
          // It starts cold here (a warm launch's layers were folded into its disk): no warm runtime record.
          const runtime = record.spec.runtime === undefined ? undefined : (({ warm: _warm, ...r }) => r)(record.spec.runtime);
          const spec = {
            ...record.spec,
            ...(runtime === undefined ? {} : { runtime }),
            disks: record.spec.disks.map((d) => (placed.disks[d.id] === undefined ? d : { ...d, path: placed.disks[d.id]! })),
            ...(image !== undefined && placed.imagePath !== undefined ? { image: { ...image, path: placed.imagePath } } : {}),
            ...(record.spec.httpSeedDir === undefined ? {} : { httpSeedDir: join(dir, 'seed') }),
          };
          app.core.repos.instances.insert({ ...record, spec, state: record.state === 'crashed' ? 'stopped' : record.state, stateReason: `moved here offline from ${caller.host ?? '?'}` });
          if (req.policy !== undefined) app.policies.set(name, req.policy);
          await app.core.networks.syncReservationsOf(record.nics.map((n) => n.network)).catch(() => {});
          adopted.set(req.id, name);
          abandon(req.id, name);
          rmSync(join(dir, INCOMING_MARKER), { force: true });
          app.changed();
          return {};
        }
        case 'done':
          adopted.delete(req.id);
          return {};
        case 'abort': {
          const name = validateName('name', req.name);
          const dir = app.paths.instanceDir(name);
          if (adopted.get(req.id) === name) {
            adopted.delete(req.id);
            app.core.repos.instances.delete(name);
            app.changed();
            rmSync(dir, { recursive: true, force: true });
          } else if (markerOf(dir)?.id === req.id) rmSync(dir, { recursive: true, force: true });
          placedBy.delete(req.id);
          return {};
        }
        default:
          throw invalid('step', 'not a step of an offline move');
      }
    },
  };
}

/** What keeps a VM from moving offline, whatever the target: refused naming the field. Answers its NICs on managed networks. */
function checkOfflineMovable(app: AppCore, instance: Instance): MovingNic[] {
  const name = instance.name;
  if (instance.type !== 'vm') throw new VirtnodeError('INVALID', `${name} is a system container; only VMs move`, { field: 'name' });
  if (!OFFLINE_MOVABLE_STATES.has(instance.state)) throw new VirtnodeError('INVALID_STATE', `${name} is ${instance.state}; only a stopped, defined or crashed VM moves offline (stop it first)`, { field: 'name' });
  const nics = movingNics(instance.nics, (n) => app.core.networks.mustGet(n));
  checkNicsLeave(nics);
  return nics;
}

/** Attached volumes (neither the instance's own nor on a shared pool) do not move: refused naming the field. */
function refuseForeignDisks(app: AppCore, instance: Instance): void {
  const shared = (path: string) => isSharedDisk(app, diskKey(path));
  const foreign = instance.spec.disks.filter((d) => !d.owned && !shared(d.path));
  if (foreign.length > 0) {
    throw new VirtnodeError('HOST_UNSUPPORTED', `disks: ${foreign.map((d) => `${d.id} (${d.path})`).join(', ')} ${foreign.length === 1 ? 'is' : 'are'} not ${instance.name}'s own; only the disks virtnode made for it move`, {
      field: 'disks',
      hint: 'detach the attached volume(s) first',
    });
  }
}

/** The file an offline move sends for a disk whose chain is folded onto its image (in the instance's directory). */
const foldedFile = (dir: string, diskId: string) => join(dir, `moving-${diskId}.qcow2`);

/**
 * The disks of a stopped VM that are copied (with their sizes and digests); those on shared pools are not. A disk
 * whose chain has layers above the image (a warm launch's) is sent as a new file, one overlay of the image with
 * those layers folded in (foldedFile; the caller removes it): the instance's own files are only read.
 */
async function disksToCopy(app: AppCore, instance: Instance, signal: AbortSignal): Promise<Array<CopiedDisk & { path: string }>> {
  const shared = (path: string) => isSharedDisk(app, diskKey(path));
  refuseForeignDisks(app, instance);
  const transfers = await defaultTransfers(instance);
  const out: Array<CopiedDisk & { path: string }> = [];
  for (const d of instance.spec.disks) {
    const t = transfers[d.id];
    if (t === undefined || t.kind !== 'copy' || shared(d.path)) continue;
    let path = d.path;
    if (t.fold !== undefined && t.base !== undefined) {
      path = foldedFile(app.paths.instanceDir(instance.name), d.id);
      rmSync(path, { force: true });
      await foldOnto(d.path, { path: t.base.sourcePath, format: t.base.format }, path, { signal });
    }
    const { size } = statSync(path);
    const base = t.base === undefined ? undefined : { sha256: t.base.sha256, image: instance.spec.image?.name ?? '?' };
    out.push({ id: d.id, file: basename(d.path), path, size, sha256: await fileSha256(path, signal), ...(base === undefined ? {} : { base }) });
  }
  return out;
}

/** Removes the folded files disksToCopy made for `instance`'s disks. */
function removeFolded(app: AppCore, instance: Instance): void {
  for (const d of instance.spec.disks) rmSync(foldedFile(app.paths.instanceDir(instance.name), d.id), { force: true });
}

/**
 * The offline move of a stopped VM this host owns, checked now (each refusal names its field and changes nothing),
 * then done as an operation (phases hashing, copying, adopting, claiming, moved). A failure at any step before the claim moved leaves
 * the instance here as it was and nothing on the target.
 */
export async function moveOffline(app: AppCore, c: ClusterService, instance: Instance, input: MoveInput, to: HostRecord, viewOn: (host: string, name: string) => Promise<InstanceView>): Promise<Job<MoveOutcome>> {
  const name = instance.name;
  const from = c.host!;
  const nics = checkOfflineMovable(app, instance);
  refuseForeignDisks(app, instance);
  const transfers = await defaultTransfers(instance);
  const bases = Object.values(transfers).flatMap((t) => (t.kind === 'copy' && t.base !== undefined ? [{ sha256: t.base.sha256, image: instance.spec.image?.name ?? '?' }] : []));
  await c.peer(to, OFFLINE_MOVES_PEER_PATH, { step: 'check', name, bases, ...(nics.length === 0 ? {} : { nics }) } satisfies Step, STEP_MS);
  const timeoutMs = (input.timeoutSeconds ?? DEFAULT_TIMEOUT_S) * 1000;
  return job('move', `instances/${name}`, async (ctx) => {
    const started = performance.now();
    const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
    const id = crypto.randomUUID();
    const call = <T>(step: Step, ms = STEP_MS) => c.peer<T>(to, OFFLINE_MOVES_PEER_PATH, step, ms);
    let phase = 'checking';
    let diskBytes = 0;
    let copyMs = 0;
    // Under the instance's lock: nothing starts, changes or deletes it while its disks are read.
    await app.core.withLock(name, 'move', { signal }, async () => {
      const current = app.core.repos.instances.get(name);
      if (current === undefined) throw new VirtnodeError('NOT_FOUND', `no instance named "${name}"`, { field: 'name' });
      let claimMoved = false;
      try {
        checkOfflineMovable(app, current);
        ctx.phase((phase = 'hashing'), `the disks of ${name}`);
        const disks = await disksToCopy(app, current, signal);
        diskBytes = disks.reduce((n, d) => n + d.size, 0);
        outgoing.set(name, { to: to.name, files: new Map(disks.map((d) => [d.id, { path: d.path, sha256: d.sha256 }])) });
        ctx.phase((phase = 'copying'), `${disks.length} disk(s), ${Math.round(diskBytes / MIB)} MiB to ${to.name}`);
        const copyStart = performance.now();
        const seed = readSeed(current.spec.httpSeedDir);
        await call(
          { step: 'receive', id, name, disks: disks.map(({ path: _path, ...d }) => d), ...(seed === undefined ? {} : { seed }) },
          Math.max(STEP_MS, timeoutMs - (performance.now() - started)),
        );
        copyMs = performance.now() - copyStart;
        outgoing.delete(name);
        removeFolded(app, current);
        signal.throwIfAborted();
        ctx.phase((phase = 'adopting'), `on ${to.name}`);
        await call({ step: 'adopt', id, instance: current, policy: app.policies.get(name) });
        ctx.phase((phase = 'claiming'), `the claim of ${name} names ${to.name}`);
        await moveClaim(c.kv(), name, from, to.name);
        claimMoved = true;
      } catch (e) {
        outgoing.delete(name);
        removeFolded(app, current);
        if (!claimMoved) await call({ step: 'abort', id, name }).catch(() => undefined);
        const err = toVirtnodeError(e);
        throw new VirtnodeError(err.code, `the move of ${name} to ${to.name} ${ctx.signal.aborted ? 'was cancelled' : 'failed'} while ${phase}; ${name} stays on ${from}, unchanged: ${err.message}`, {
          cause: e,
          ...(err.hint === undefined ? {} : { hint: err.hint }),
          ...(err.field === undefined ? {} : { field: err.field }),
        });
      }
      // The instance is the target's now: this host forgets it.
      app.core.repos.instances.delete(name);
      rmSync(app.paths.instanceDir(name), { recursive: true, force: true });
      await app.core.networks.syncReservationsOf(instance.nics.map((n) => n.network)).catch(() => {});
    });
    await call({ step: 'done', id, name }).catch(() => undefined);
    app.changed();
    const totalMs = Math.round(performance.now() - started);
    ctx.phase('moved', `on ${to.name} (stopped); ${Math.round(diskBytes / MIB)} MiB copied in ${Math.round(copyMs)} ms, ${totalMs} ms in all`);
    return { instance: await viewOn(to.name, name), from, to: to.name, totalMs, migrationMs: Math.round(copyMs), downtimeMs: null, bytesSent: 0, diskBytes, offline: true, postcopy: false };
  });
}
