/**
 * Instances across a cluster. The instance contract's implementation on one host (`local`) is wrapped twice:
 * `ownedHere` is what this host does with an instance it runs (refuse new work while fenced, give a deleted
 * instance's claim back, say which host answers); `clustered` is what any host does with a request: a launch is
 * placed by the scheduler (a revision-guarded claim in etcd, which is also the record of the instance's owner) and
 * runs on the chosen host; a request about an instance this host does not have goes to its owner; a list spans
 * every online host. Other hosts reach `ownedHere` through the cluster API (mutual TLS, INSTANCES_PEER_PATH).
 * A standalone host (no cluster.json) never loads the cluster code and behaves as before.
 */
import { instanceEndpoints } from '../api/contracts/instances.ts';
import type { EndpointSpec } from '../api/endpoint.ts';
import type { InstanceView } from '../api/schemas.ts';
import type { HostRecord } from '../cluster/model.ts';
import type { PeerRoute } from '../cluster/peer-http.ts';
import type { ClusterService } from '../cluster/service.ts';
import type { HostLimits } from '../host/limits.ts';
import { validateLaunch } from '../instances/launch-validate.ts';
import { VirtnodeError, invalid, isVirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import { clusterOf } from './cluster-of.ts';
import type { AppCore } from './context.ts';
import { followRemote, runFollowed } from './forwarded-jobs.ts';
import { launchDigest } from './images-cluster.ts';
import { type Job, type OperationContext, job, runInline } from './operations.ts';
import { type Caller, type Implementation, handlerOf } from './resource.ts';

type Impl = Implementation<typeof instanceEndpoints>;
type Op = keyof typeof instanceEndpoints;

/** The cluster API route through which hosts ask each other about their instances. */
export const INSTANCES_PEER_PATH = '/v1/instances';

interface PeerRequest {
  op: Op;
  input: Record<string, unknown>;
  /** Long work: check the input (and refuse as the owner would) without doing it. */
  validateOnly?: boolean;
  /** Long work: the asker's id for it, under which it can follow and cancel it (forwarded-jobs.ts). */
  follow?: string;
}

const isOperation = (op: Op): boolean => (instanceEndpoints[op] as EndpointSpec).operation === true;

const UNBOUNDED: HostLimits = { cpus: 1024, memoryBytes: Number.MAX_SAFE_INTEGER };
const SHORT_MS = 60_000;
const LIST_MS = 15_000;
const MIB = 1024 * 1024;

/** An instance request to another host's `ownedHere` (long work runs there to its end before it answers). */
export function askHost<T>(c: ClusterService, host: string | HostRecord, op: Op, input: object, timeoutMs: number, options: { validateOnly?: boolean; follow?: string } = {}): Promise<T> {
  const { validateOnly, follow } = options;
  return c.peer<T>(host, INSTANCES_PEER_PATH, { op, input: input as Record<string, unknown>, ...(validateOnly === true ? { validateOnly } : {}), ...(follow === undefined ? {} : { follow }) } satisfies PeerRequest, timeoutMs);
}

/**
 * Long work forwarded to `host`, run there to its end while this host's operation shows its phases as they come
 * and cancels it there when cancelled (forwarded-jobs.ts).
 */
async function forwardFollowed<T>(c: ClusterService, host: string, op: Op, input: object, timeoutMs: number, ctx: OperationContext): Promise<T> {
  const stopFollowing = followRemote(c, host, ctx.id, ctx);
  try {
    return await askHost<T>(c, host, op, input, timeoutMs, { follow: ctx.id });
  } finally {
    await stopFollowing();
  }
}

/** Instance views (alone, in a list, or as `{instance}` in a result) get the answering host. */
function mark<T>(value: T, host: string): T {
  if (Array.isArray(value)) return value.map((v: unknown) => mark(v, host)) as T;
  if (value === null || typeof value !== 'object') return value;
  const o = value as Record<string, unknown>;
  if (typeof o['uuid'] === 'string' && typeof o['smbiosUuid'] === 'string') return { ...o, host } as T;
  if (o['instance'] !== null && typeof o['instance'] === 'object') return { ...o, instance: mark(o['instance'], host) } as T;
  return value;
}

function markJob<T>(work: Job<T>, host: string): Job<T> {
  return { ...work, run: async (ctx) => mark(await work.run(ctx), host) };
}

/** What this host does with its own instances, whoever asked (a front here, or another host). */
export function ownedHere(core: AppCore, local: Impl): Impl {
  const wrap = <K extends Op>(op: K, before?: (c: ClusterService) => void) =>
    (async (input: Parameters<Impl[K]>[0], caller?: Caller) => {
      const c = await clusterOf(core);
      const call = handlerOf(local, op);
      if (c === undefined) return call(input as Record<string, unknown>, caller);
      before?.(c);
      const out = await call(input as Record<string, unknown>, caller);
      return isOperation(op) ? markJob(out as Job<unknown>, c.host!) : mark(out, c.host!);
    }) as unknown as Impl[K];
  const fenced = (what: string) => (c: ClusterService) => c.refuseWhileFenced(what);
  const impl = {} as Record<Op, unknown>;
  for (const op of Object.keys(instanceEndpoints) as Op[]) impl[op] = wrap(op);
  return {
    ...(impl as Impl),
    launch: wrap('launch', fenced('launch')),
    create: wrap('create', fenced('create')),
    start: wrap('start', fenced('start')),
    restart: wrap('restart', fenced('restart')),
    resume: wrap('resume', fenced('resume')),
    move: async (input, caller) => {
      const c = await clusterOf(core);
      if (c === undefined) return local.move(input, caller);
      const { moveOwned } = await import('./instances-move.ts');
      return moveOwned(core, c, input, (host, name) => askHost<InstanceView>(c, host, 'get', { name }, SHORT_MS));
    },
    delete: async (input, caller) => {
      const c = await clusterOf(core);
      if (c === undefined) return local.delete(input, caller);
      const { ownerOf, releaseClaim } = await import('../cluster/placement.ts');
      // A claim left behind (etcd did not answer when its instance was deleted): deleting again gives it back.
      if (core.instances.repo.get(validateName('name', input.name)) === undefined && (await ownerOf(c.kv(), input.name)) === c.host) {
        await releaseClaim(c.kv(), input.name);
        return mark({ name: input.name, deleted: true }, c.host!);
      }
      const out = await local.delete(input, caller);
      await releaseClaim(c.kv(), input.name).catch((e: unknown) => {
        throw new VirtnodeError('INVALID_STATE', `${input.name} was deleted, but its placement claim was not given back to the cluster: ${e instanceof Error ? e.message : String(e)}`, {
          hint: `run \`virtnode delete ${input.name}\` again once etcd answers`,
        });
      });
      return out;
    },
  };
}

/** This host's cluster API route for other hosts' requests about instances it runs. */
export function instancesPeerRoute(here: () => Impl): PeerRoute {
  return {
    handle: async (body) => {
      const req = body as Partial<PeerRequest>;
      if (typeof req.op !== 'string' || !Object.hasOwn(instanceEndpoints, req.op) || req.input === null || typeof req.input !== 'object') throw invalid('op', 'not an instance request');
      // A peer acts for someone on its own host: paths in its request are not this host's user's to name.
      const out = await handlerOf(here(), req.op)(req.input, { remote: true });
      if (!isOperation(req.op)) return out;
      if (req.validateOnly === true) return {};
      return typeof req.follow === 'string' ? runFollowed(out as Job<unknown>, req.follow) : runInline(out as Job<unknown>);
    },
  };
}

/** Any host's answer to the instance contract in a cluster (see the top of this file). */
export function clustered(core: AppCore, here: Impl): Impl {
  const forward = askHost;

  /** The host that runs NAME when it is not this one (its claim in etcd says), else undefined. */
  async function remoteOwner(c: ClusterService, name: string): Promise<string | undefined> {
    validateName('name', name);
    if (core.instances.repo.get(name) !== undefined) return undefined;
    const { ownerOf } = await import('../cluster/placement.ts');
    const owner = await ownerOf(c.kv(), name);
    return owner !== undefined && owner !== c.host ? owner : undefined;
  }

  /**
   * A request about an instance whose host is offline: `get` answers what etcd knows of it (state `unknown`);
   * anything else is refused, since only its host can act on it.
   */
  async function ownerOffline(c: ClusterService, op: Op, name: string, owner: string): Promise<never | InstanceView> {
    const { offlineHostReason, unreachableInstance } = await import('./instances-unreachable.ts');
    const why = offlineHostReason(owner);
    if (op === 'get') {
      const view = await unreachableInstance(c.kv(), name, owner, why);
      if (view !== undefined) return view;
    }
    throw new VirtnodeError('CONFLICT', `${name}: its ${why}: only that host can act on it`, {
      field: 'name',
      hint: `wait until ${owner} is back (\`virtnode cluster ls\`); a failover candidate (restart on-failure or always, disks on shared pools) moves to a live host by itself`,
    });
  }

  const byName = <K extends Op>(op: K) =>
    (async (input: { name: string }, caller?: Caller) => {
      const c = await clusterOf(core);
      const owner = c === undefined ? undefined : await remoteOwner(c, input.name);
      if (c === undefined || owner === undefined) return handlerOf(here, op)(input, caller);
      if (!(await c.isOnline(owner))) return ownerOffline(c, op, input.name, owner);
      if (!isOperation(op)) return forward(c, owner, op, input, SHORT_MS);
      await forward(c, owner, op, input, SHORT_MS, { validateOnly: true });
      const timeoutMs = (((input as { timeoutSeconds?: number }).timeoutSeconds ?? 60) + 120) * 1000;
      return job(op, `instances/${input.name}`, async (ctx) => {
        ctx.phase('forwarded', `to ${owner}`);
        return forwardFollowed(c, owner, op, input, timeoutMs, ctx);
      });
    }) as unknown as Impl[K];

  const named = {} as Record<Op, unknown>;
  for (const [op, spec] of Object.entries(instanceEndpoints) as Array<[Op, (typeof instanceEndpoints)[Op]]>) if ('params' in spec) named[op] = byName(op);

  return {
    ...here,
    ...(named as Partial<Impl>),

    async list(input, caller) {
      const c = await clusterOf(core);
      const mine = await here.list(input, caller);
      if (c === undefined) return mine;
      const { readCandidates } = await import('../cluster/placement.ts');
      const { offlineHostReason, unreachableInstances } = await import('./instances-unreachable.ts');
      const others = (await readCandidates(c.kv())).filter((h) => h.host.name !== c.host);
      // Instances of a host that is offline, or does not answer, are shown from etcd's records (state unknown).
      const unreachable = new Map(others.filter((h) => h.alive === undefined).map((h) => [h.host.name, offlineHostReason(h.host.name)]));
      const theirs = await Promise.all(
        others
          .filter((h) => h.alive !== undefined)
          .map((h) =>
            askHost<InstanceView[]>(c, h.host, 'list', {}, LIST_MS).catch((e: unknown) => {
              unreachable.set(h.host.name, `host ${h.host.name} did not answer: ${e instanceof Error ? e.message : String(e)}`);
              return [];
            }),
          ),
      );
      const known = [...mine, ...theirs.flat()];
      const listed = new Set(known.map((i) => i.name));
      const unknown = (await unreachableInstances(c.kv(), unreachable)).filter((i) => !listed.has(i.name));
      return [...known, ...unknown].sort((a, b) => a.name.localeCompare(b.name) || (a.host ?? '').localeCompare(b.host ?? ''));
    },

    async launch(input, caller) {
      const c = await clusterOf(core);
      const { target, group, ...rest } = input;
      if (c === undefined) {
        if (target !== undefined) throw invalid('target', `this host is not in a cluster: there is no host ${target} to launch on`, 'leave out --target, or form a cluster (`virtnode cluster init`)');
        if (group !== undefined) throw invalid('group', 'anti-affinity groups place instances on hosts of a cluster, and this host is not in one', 'leave out --group');
        return here.launch(rest, caller);
      }
      c.refuseWhileFenced('launch');
      // What placement needs, in the owner's words; this host's own CPUs and memory are no limit (placement and
      // then the owner check against the chosen host's), nor are image, networks... (the owner checks them).
      const valid = validateLaunch({
        image: input.image,
        ...(input.name === undefined ? {} : { name: input.name }),
        ...(input.cpus === undefined ? {} : { cpus: String(input.cpus) }),
        ...(input.memory === undefined ? {} : { memory: input.memory }),
        ...(input.diskSize === undefined ? {} : { diskSize: input.diskSize }),
        ...(input.type === undefined ? {} : { type: input.type }),
      }, UNBOUNDED);
      // The image travels by its sha256, so a host without it can fetch it from one that has it.
      const imageSha256 = input.imageSha256 ?? (await launchDigest(core, c, input.image));
      const owned = { ...rest, name: valid.name, ...(imageSha256 === undefined ? {} : { imageSha256 }) };
      const { overcommitRatios, place, releaseClaim } = await import('../cluster/placement.ts');
      const kv = c.kv();
      if (target !== undefined) await c.usableHostRecord(target, 'target', 'see `virtnode cluster ls`; choose another --target, or none');
      const claim = await place(
        kv,
        {
          instance: valid.name,
          cpus: valid.cpus,
          memoryBytes: valid.memoryMiB * MIB,
          diskBytes: valid.diskSizeBytes ?? 0,
          ...(input.pool === undefined ? {} : { pool: input.pool }),
          ...(target === undefined ? {} : { target }),
          ...(group === undefined ? {} : { group }),
          type: valid.type,
        },
        overcommitRatios(),
      ).catch((e: unknown) => {
        if (target !== undefined && isVirtnodeError(e, 'CONFLICT') && e.message.startsWith('no host has room')) {
          throw new VirtnodeError('CONFLICT', `target: ${e.message}`, { field: 'target', hint: 'choose another --target, or none' });
        }
        throw e;
      });
      const release = () => releaseClaim(kv, valid.name).then(() => undefined);
      const placed = `on ${claim.host}${target === undefined ? ' (chosen by the scheduler)' : ' (--target)'}`;

      if (claim.host === c.host) {
        const work = await here.launch(owned, caller).catch(async (e: unknown) => {
          await release();
          throw e;
        });
        return job(work.kind, work.target, async (ctx) => {
          ctx.phase('placed', placed);
          try {
            return await work.run(ctx);
          } catch (e) {
            if (core.instances.repo.get(valid.name) === undefined) await release();
            throw e;
          }
        });
      }
      // The owner checks the request now (a bad image there is refused here, before any operation starts).
      await forward(c, claim.host, 'launch', owned, SHORT_MS, { validateOnly: true }).catch(async (e: unknown) => {
        await release();
        throw e;
      });
      const timeoutMs = ((input.timeoutSeconds ?? 900) + 120) * 1000;
      return job('launch', `instances/${valid.name}`, async (ctx) => {
        ctx.phase('placed', placed);
        // Its phases there (an image fetched from another host first, disk, seed, booting...) are shown here as
        // they come, and a cancel here cancels it there.
        try {
          return await forwardFollowed(c, claim.host, 'launch', owned, timeoutMs, ctx);
        } catch (e) {
          // Give the room back only when the owner surely has no such instance.
          const gone = await forward(c, claim.host, 'get', { name: valid.name }, SHORT_MS).then(
            () => false,
            (x: unknown) => isVirtnodeError(x, 'NOT_FOUND'),
          );
          if (gone) await release();
          throw e;
        }
      });
    },
  };
}
