/**
 * Moves of many instances at once, over the live move of one (instances-move.ts): `cluster evacuate HOST` takes a
 * host out of placement and moves its instances (running ones live, stopped ones offline) to hosts the scheduler picks; `cluster restore HOST` puts
 * it back and moves those instances home; `cluster rebalance` evens out the hosts' loads. Each is an operation
 * that reports per instance where it went or why not. Asked on any host: each move goes through the instance
 * contract as any `virtnode move` does, so it runs on the instance's owner (forwarded there when that is another
 * host). Moves are made one at a time, each placement decided on the cluster's usage as the previous move left it.
 */
import type { InstanceMoveReport, RebalanceResult } from '../api/contracts/cluster.ts';
import type { Static } from 'typebox';
import type { InstanceView } from '../api/schemas.ts';
import { listClaims, markEvacuatedFrom, setEvacuated } from '../cluster/evacuation.ts';
import { KEYS } from '../cluster/model.ts';
import { type Claim, PLACEMENT_KEYS, choose, overcommitRatios, readCandidates } from '../cluster/placement.ts';
import { type BalanceInstance, planRebalance } from '../cluster/rebalance.ts';
import { type ClusterService, checkHostName } from '../cluster/service.ts';
import { OFFLINE_MOVABLE_STATES } from './offline-states.ts';
import { USER_NETWORK } from '../instances/model.ts';
import { unsafeLiveMove } from '../qemu/ram-pad.ts';
import { VirtnodeError, invalid, toVirtnodeError } from '../lib/errors.ts';
import type { AppCore } from './context.ts';
import { clusterOf } from './cluster-of.ts';
import { askHost, ownedHere } from './instances-cluster.ts';
import { instances, localInstances } from './instances.ts';
import { type Job, type OperationContext, job, runInline } from './operations.ts';

type Report = Static<typeof InstanceMoveReport>;
type Rebalanced = Static<typeof RebalanceResult>;

export interface EvacuationOutcome {
  host: string;
  evacuated: boolean;
  instances: Report[];
}

const LIST_MS = 30_000;
const MOVE_TIMEOUT_S = 600;

async function requireCluster(core: AppCore, what: string): Promise<ClusterService> {
  const c = await clusterOf(core);
  if (c === undefined) throw new VirtnodeError('INVALID_STATE', `${what}: this host is not in a cluster`, { hint: 'form one with `virtnode cluster init --address IP`' });
  c.refuseWhileFenced(what);
  return c;
}

/**
 * A host whose instances move live (away, or back to it): known (404 naming `host`), and online, since a live
 * move needs its daemon (409).
 */
async function movingHost(c: ClusterService, host: string, what: string): Promise<string> {
  await c.hostRecord(host, 'host');
  if ((await c.kv().get(KEYS.alive(host))) === undefined) {
    throw new VirtnodeError('CONFLICT', `host: ${host} is offline (it holds no cluster lease): ${what} moves instances live, which needs its daemon`, {
      field: 'host',
      hint: `start virtnode's daemon on ${host} first; a host gone for good is removed with \`virtnode cluster remove --force ${host}\``,
    });
  }
  return host;
}

/** The instances a host runs, from the host itself (an error if it does not answer: nothing is left out silently). */
async function instancesOn(core: AppCore, c: ClusterService, host: string): Promise<InstanceView[]> {
  const views = host === c.host ? await ownedHere(core, localInstances(core)).list({}) : await askHost<InstanceView[]>(c, host, 'list', {}, LIST_MS);
  return [...views].sort((a, b) => a.name.localeCompare(b.name));
}

/** One live move through the instance contract (on the owner, wherever it is asked); progress as `NAME: phase`. */
async function moveOne(core: AppCore, ctx: OperationContext, name: string, to: string): Promise<Report & { result: 'moved' }> {
  const work = await instances.implement(core).move({ name, host: to, timeoutSeconds: MOVE_TIMEOUT_S });
  const r = await runInline(work, { signal: ctx.signal, onPhase: (phase, detail) => ctx.phase(phase, `${name}: ${detail}`) });
  return { name, from: r.from, to: r.to, result: 'moved', ...(r.downtimeMs === null ? {} : { downtimeMs: r.downtimeMs }) };
}

/**
 * Before each move: a cancelled operation stops here, saying what moved so far. (A move forwarded to another
 * host goes on to its end there whatever happens here, so the check cannot be left to the move itself.)
 */
function stopIfCancelled(ctx: OperationContext, what: string, reports: Report[]): void {
  if (!ctx.signal.aborted) return;
  const moved = reports.filter((r) => r.result === 'moved').map((r) => `${r.name} to ${r.to}`);
  throw new VirtnodeError('INTERRUPTED', `${what} was cancelled; moved so far: ${moved.join(', ') || 'none'}`);
}

/** A made move's report once its claim's evacuation mark is written; a mark etcd did not take is said in it. */
async function remembered(report: Report, mark: () => Promise<unknown>, consequence: string): Promise<Report> {
  try {
    await mark();
    return report;
  } catch (e) {
    return { ...report, reason: `moved, but ${consequence} (${toVirtnodeError(e).message})` };
  }
}

/** A report of a move that did not happen; a cancelled operation stops at once. */
function failed(ctx: OperationContext, base: { name: string; from: string; to?: string }, e: unknown): Report {
  if (ctx.signal.aborted) throw e;
  return { ...base, result: 'failed', reason: toVirtnodeError(e).message };
}

/**
 * Why an instance cannot move, or undefined (the move's own pre-checks, as far as a view tells): a running VM moves
 * live; a stopped, defined or crashed one offline (its disks copied) unless `liveOnly`.
 */
function notMovable(core: AppCore, v: InstanceView, options: { liveOnly?: boolean } = {}): string | undefined {
  const offline = options.liveOnly !== true && OFFLINE_MOVABLE_STATES.has(v.state);
  if (v.state !== 'running' && !offline) return `${v.state}; only a running VM moves live${options.liveOnly === true ? '' : ', a stopped one offline'}`;
  if (v.type !== 'vm') return `a system container; only VMs move${offline ? '' : ' live'}`;
  // A NIC with a reserved address is on a NAT or isolated network, which stays on its host unless the network is
  // the whole cluster's (network/movable.ts); one on a bridged network moves where the same network is (the move's
  // own check, per target).
  const local = (network: string) => core.core.networks.repo.get(network)?.cluster === undefined;
  if (v.nics.some((n) => n.network !== USER_NETWORK && n.address !== undefined && local(n.network))) {
    return 'a NIC on a NAT or isolated network of its host; only NICs on bridged networks and on networks of the whole cluster move';
  }
  if (!offline && v.tuning?.cpuModel === undefined) return "runs with QEMU's default CPU (host or max), which differs from host to host; launch it with --cpu-model";
  // The move's memory pre-check (checkLiveMoveMemory); a view without `runtime` (started before virtnode recorded
  // it) is left to the move itself, which asks its QEMU.
  const unsafe = !offline && v.runtime !== undefined ? unsafeLiveMove(v.runtime) : undefined;
  if (unsafe !== undefined) return `cannot move live: ${unsafe}; move it stopped, or restart it so virtnode pads its memory`;
  return undefined;
}

export async function evacuate(core: AppCore, input: { host: string }): Promise<Job<EvacuationOutcome>> {
  const name = checkHostName('host', input.host);
  const c = await requireCluster(core, 'evacuate');
  const host = await movingHost(c, name, 'an evacuation');
  const kv = c.kv();
  return job('evacuate', `cluster/hosts/${host}`, async (ctx) => {
    const { changed } = await setEvacuated(kv, host, true);
    ctx.phase('evacuated', `${host} is out of placement${changed ? '' : ' (it was already)'}`);
    const reports: Report[] = [];
    for (const v of await instancesOn(core, c, host)) {
      const why = notMovable(core, v);
      if (why !== undefined) {
        reports.push({ name: v.name, from: host, result: 'stays', reason: why });
        continue;
      }
      const entry = await kv.get(PLACEMENT_KEYS.claim(v.name));
      const claim = entry === undefined ? undefined : (JSON.parse(entry.value) as Claim);
      if (claim === undefined) {
        reports.push({ name: v.name, from: host, result: 'failed', reason: 'it has no placement claim in the cluster (it was not launched in it)' });
        continue;
      }
      const request = { instance: v.name, cpus: claim.cpus, memoryBytes: claim.memoryBytes, diskBytes: claim.diskBytes, pool: claim.pool, ...(claim.group === undefined ? {} : { group: claim.group }) };
      const { chosen, refusals } = choose(await readCandidates(kv), request, overcommitRatios());
      if (chosen === undefined) {
        reports.push({ name: v.name, from: host, result: 'failed', reason: `no host has room: ${refusals.filter((r) => !r.startsWith(`${host} `)).join(', ') || 'the cluster has no other host'}` });
        continue;
      }
      const to = chosen.host.name;
      stopIfCancelled(ctx, `the evacuation of ${host}`, reports);
      ctx.phase('moving', `${v.name} to ${to} (chosen by the scheduler)`);
      let report: Report;
      try {
        report = await moveOne(core, ctx, v.name, to);
      } catch (e) {
        reports.push(failed(ctx, { name: v.name, from: host, to }, e));
        continue;
      }
      reports.push(await remembered(report, () => markEvacuatedFrom(kv, v.name, host), `${host} is not recorded on its claim: \`cluster restore ${host}\` will not bring it back`));
      ctx.phase('moved', `${v.name} ${v.state === 'running' ? 'runs' : 'is'} on ${to}`);
    }
    return { host, evacuated: true, instances: reports };
  });
}

export async function restore(core: AppCore, input: { host: string }): Promise<Job<EvacuationOutcome>> {
  const name = checkHostName('host', input.host);
  const c = await requireCluster(core, 'restore');
  const host = await movingHost(c, name, 'a restore');
  const kv = c.kv();
  const impl = instances.implement(core);
  return job('restore', `cluster/hosts/${host}`, async (ctx) => {
    const { changed } = await setEvacuated(kv, host, false);
    ctx.phase('restored', `${host} takes new work again${changed ? '' : ' (it did already)'}`);
    const reports: Report[] = [];
    const home: Claim[] = (await listClaims(kv)).filter((x) => x.evacuatedFrom === host);
    for (const claim of home) {
      const name = claim.instance;
      const base = { name, from: claim.host, to: host };
      if (claim.host === host) {
        await markEvacuatedFrom(kv, name, undefined);
        reports.push({ ...base, result: 'stays', reason: `it runs on ${host} already` });
        continue;
      }
      let why: string | undefined;
      try {
        why = notMovable(core, await impl.get({ name }));
      } catch (e) {
        reports.push(failed(ctx, base, e));
        continue;
      }
      if (why !== undefined) {
        // Still remembered: a restore once it runs again brings it back.
        reports.push({ ...base, result: 'stays', reason: why });
        continue;
      }
      stopIfCancelled(ctx, `the restore of ${host}`, reports);
      ctx.phase('moving', `${name} back from ${claim.host}`);
      let report: Report;
      try {
        report = await moveOne(core, ctx, name, host);
      } catch (e) {
        reports.push(failed(ctx, base, e));
        continue;
      }
      reports.push(await remembered(report, () => markEvacuatedFrom(kv, name, undefined), `its claim still says it was evacuated from ${host} (harmless: a restore finds it there)`));
      ctx.phase('moved', `${name} is on ${host}`);
    }
    return { host, evacuated: false, instances: reports };
  });
}

export async function rebalance(core: AppCore, input: { dryRun?: boolean; threshold?: number }): Promise<Job<Rebalanced>> {
  const threshold = input.threshold;
  if (threshold !== undefined && (!Number.isInteger(threshold) || threshold < 1 || threshold > 100)) throw invalid('threshold', `${threshold} is not a whole percentage from 1 to 100`);
  const c = await requireCluster(core, 'rebalance');
  const kv = c.kv();
  const impl = instances.implement(core);
  const dryRun = input.dryRun === true;
  return job('rebalance', 'cluster', async (ctx) => {
    const [candidates, claims, views] = await Promise.all([readCandidates(kv), listClaims(kv), impl.list({})]);
    const viewOf = new Map(views.map((v) => [`${v.host}/${v.name}`, v]));
    const members: BalanceInstance[] = claims.map((x) => {
      const v = viewOf.get(`${x.host}/${x.instance}`);
      return { name: x.instance, host: x.host, cpus: x.cpus, memoryBytes: x.memoryBytes, diskBytes: x.diskBytes, pool: x.pool, ...(x.group === undefined ? {} : { group: x.group }), movable: v !== undefined && notMovable(core, v, { liveOnly: true }) === undefined };
    });
    const plan = planRebalance(candidates, members, overcommitRatios(), threshold === undefined ? {} : { thresholdPercent: threshold });
    ctx.phase('planned', `${plan.moves.length} move(s): ${plan.note}`);
    const moves: Report[] = [];
    for (const m of plan.moves) {
      if (dryRun) {
        moves.push({ name: m.name, from: m.from, to: m.to, result: 'planned', reason: m.why });
        continue;
      }
      stopIfCancelled(ctx, 'the rebalance', moves);
      ctx.phase('moving', `${m.name} from ${m.from} to ${m.to}`);
      try {
        moves.push({ ...(await moveOne(core, ctx, m.name, m.to)), reason: m.why });
      } catch (e) {
        moves.push(failed(ctx, { name: m.name, from: m.from, to: m.to }, e));
      }
    }
    return { dryRun, ...plan, moves };
  });
}
