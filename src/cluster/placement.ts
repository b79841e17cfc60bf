/**
 * Placement: which host runs a new instance, and the claim that reserves its room there. A claim is one
 * revision-guarded transaction on the host's usage record (`/virtnode/usage/HOST`) and the instance's claim key:
 * two launches that read the same usage can never both commit, so the last slot goes to one of them; the other
 * reads again and chooses again. No locks.
 */
import { randomBytes } from 'node:crypto';
import { VirtnodeError } from '../lib/errors.ts';
import type { ProcessIdentity } from '../lib/proc.ts';
import { type DiskOwnerRecord, disksHeldBy, diskOwnerWrite } from './disk-ownership-etcd.ts';
import type { Kv, KvEntry, KvGuard, KvWrite } from './kv.ts';
import { type AliveRecord, type HostRecord, KEYS } from './model.ts';

export const PLACEMENT_KEYS = {
  usage: (host: string) => `/virtnode/usage/${host}`,
  usages: '/virtnode/usage/',
  claim: (instance: string) => `/virtnode/claims/${instance}`,
  claims: '/virtnode/claims/',
} as const;

export interface PlacementRequest {
  instance: string;
  cpus: number;
  memoryBytes: number;
  /** Bytes the new disks take in `pool` on the chosen host. */
  diskBytes: number;
  pool?: string;
  /** This host only (`launch --target HOST`). */
  target?: string;
  /** Labels the host must have, all of them. */
  labels?: Record<string, string>;
  /** Anti-affinity: members of one group go to different hosts while there are hosts without one. */
  group?: string;
  /** What the instance is (kept in the claim, so that a list shows it while its host is offline). */
  type?: 'vm' | 'container';
}

export interface OvercommitRatios {
  /** Virtual CPUs per host CPU (default 4). */
  cpu: number;
  /** Guest memory per byte of host memory (default 1: no overcommit). */
  memory: number;
}

export const DEFAULT_OVERCOMMIT: OvercommitRatios = { cpu: 4, memory: 1 };

/** Overcommit ratios of placement (env: VIRTNODE_CLUSTER_CPU_OVERCOMMIT, VIRTNODE_CLUSTER_MEMORY_OVERCOMMIT). */
export function overcommitRatios(defaults: OvercommitRatios = DEFAULT_OVERCOMMIT): OvercommitRatios {
  const read = (name: string, fallback: number) => {
    const v = process.env[name];
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new VirtnodeError('INVALID', `${name}: "${v}" is not a positive ratio`, { field: name });
    return n;
  };
  return { cpu: read('VIRTNODE_CLUSTER_CPU_OVERCOMMIT', defaults.cpu), memory: read('VIRTNODE_CLUSTER_MEMORY_OVERCOMMIT', defaults.memory) };
}

/** What the cluster has claimed on one host (the usage record). */
export interface HostUsage {
  cpus: number;
  memoryBytes: number;
  diskBytes: Record<string, number>;
  instances: number;
  groups: Record<string, number>;
}

export interface Claim {
  instance: string;
  host: string;
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
  pool: string;
  group?: string;
  /** What the instance is (absent in claims made before it was recorded: then a VM). */
  type?: 'vm' | 'container';
  /** The host a `cluster evacuate` moved it away from, where `cluster restore` brings it back (evacuation.ts). */
  evacuatedFrom?: string;
  /**
   * A live move of it is under way (src/cluster/move-mark.ts): the guest may run on `to` any moment. Failover does
   * not restart it elsewhere while this is set. Gone when the claim moves, or when the move is undone.
   */
  moving?: MovingMark;
  /** Unique per attempt: tells our own committed claim from another's after an ambiguous answer. */
  nonce: string;
  claimedAt: string;
}

export interface MovingMark {
  to: string;
  /** The move's id (its offer's). */
  id: string;
  at: string;
}

export interface Candidate {
  host: HostRecord;
  alive: AliveRecord | undefined;
  usage: HostUsage;
  usageEntry: KvEntry | undefined;
}

const EMPTY_USAGE: HostUsage = { cpus: 0, memoryBytes: 0, diskBytes: {}, instances: 0, groups: {} };
const MIB = 1024 * 1024;

/** Why a host cannot take the request, or undefined if it can. */
export function unfit(c: Candidate, r: PlacementRequest, ratios: OvercommitRatios): string | undefined {
  if (c.host.evacuated === true) return 'evacuated';
  if (c.alive === undefined) return 'offline';
  for (const [k, v] of Object.entries(r.labels ?? {})) if (c.alive.labels[k] !== v) return `no label ${k}=${v}`;
  const cap = c.alive.capacity;
  const freeCpus = Math.floor(cap.cpus * ratios.cpu) - c.usage.cpus;
  if (freeCpus < r.cpus) return `CPUs: ${Math.max(0, freeCpus)} free of ${Math.floor(cap.cpus * ratios.cpu)}`;
  const memTotal = Math.floor(cap.memoryBytes * ratios.memory);
  const freeMem = memTotal - c.usage.memoryBytes;
  if (freeMem < r.memoryBytes) return `memory: ${Math.max(0, Math.floor(freeMem / MIB))} MiB free of ${Math.floor(memTotal / MIB)} MiB`;
  const poolName = r.pool ?? 'default';
  if (r.diskBytes > 0) {
    const pool = cap.pools.find((p) => p.name === poolName);
    if (pool === undefined) return `no pool ${poolName}`;
    const freeDisk = pool.availableBytes - (c.usage.diskBytes[poolName] ?? 0);
    if (freeDisk < r.diskBytes) return `disk in pool ${poolName}: ${Math.max(0, Math.floor(freeDisk / MIB))} MiB free`;
  }
  return undefined;
}

/**
 * Picks among the hosts that fit: with a group, those holding fewest of its members first (anti-affinity while
 * possible); then spread, the host whose claimed memory is the smallest share of what it has; then by name.
 */
export function choose(candidates: Candidate[], r: PlacementRequest, ratios: OvercommitRatios): { chosen?: Candidate; refusals: string[] } {
  const refusals: string[] = [];
  const fit: Candidate[] = [];
  for (const c of candidates) {
    if (r.target !== undefined && c.host.name !== r.target) continue;
    const why = unfit(c, r, ratios);
    if (why === undefined) fit.push(c);
    else refusals.push(`${c.host.name} (${why})`);
  }
  const share = (c: Candidate) => c.usage.memoryBytes / Math.max(1, c.alive!.capacity.memoryBytes);
  const groupCount = (c: Candidate) => (r.group === undefined ? 0 : (c.usage.groups[r.group] ?? 0));
  fit.sort((a, b) => groupCount(a) - groupCount(b) || share(a) - share(b) || a.host.name.localeCompare(b.host.name));
  return fit[0] === undefined ? { refusals } : { chosen: fit[0], refusals };
}

export async function readCandidates(kv: Kv): Promise<Candidate[]> {
  const [hosts, alive, usage] = await Promise.all([kv.list(KEYS.hosts), kv.list(KEYS.alives), kv.list(PLACEMENT_KEYS.usages)]);
  const aliveBy = new Map(alive.entries.map((e) => [e.key.slice(KEYS.alives.length), JSON.parse(e.value) as AliveRecord]));
  const usageBy = new Map(usage.entries.map((e) => [e.key.slice(PLACEMENT_KEYS.usages.length), e]));
  return hosts.entries.map((e) => {
    const host = JSON.parse(e.value) as HostRecord;
    const u = usageBy.get(host.name);
    return { host, alive: aliveBy.get(host.name), usage: u === undefined ? EMPTY_USAGE : (JSON.parse(u.value) as HostUsage), usageEntry: u };
  });
}

function validate(r: PlacementRequest): void {
  if (!Number.isInteger(r.cpus) || r.cpus < 1) throw new VirtnodeError('INVALID', `cpus: ${r.cpus} is not a whole number of at least 1`, { field: 'cpus' });
  if (!Number.isInteger(r.memoryBytes) || r.memoryBytes < 1) throw new VirtnodeError('INVALID', `memory: ${r.memoryBytes} is not a positive number of bytes`, { field: 'memory' });
  if (!Number.isInteger(r.diskBytes) || r.diskBytes < 0) throw new VirtnodeError('INVALID', `disk: ${r.diskBytes} is not a number of bytes`, { field: 'disk' });
}

/**
 * Chooses a host and claims room there for the instance. Each attempt reads the hosts and their usage, chooses,
 * and commits only if the chosen host's usage record and the instance's claim key are as read; a lost attempt
 * starts over. Fails with a clear error when no host fits (each host's reason named).
 */
export async function place(kv: Kv, request: PlacementRequest, ratios: OvercommitRatios = DEFAULT_OVERCOMMIT, options: { maxAttempts?: number } = {}): Promise<Claim> {
  validate(request);
  const pool = request.pool ?? 'default';
  const claimKey = PLACEMENT_KEYS.claim(request.instance);
  const maxAttempts = options.maxAttempts ?? 50;
  for (let attempt = 1; ; attempt++) {
    const [candidates, existing] = await Promise.all([readCandidates(kv), kv.get(claimKey)]);
    if (existing !== undefined) {
      const other = JSON.parse(existing.value) as Claim;
      throw new VirtnodeError('CONFLICT', `instance ${request.instance} is placed on ${other.host} already`, { field: 'name' });
    }
    if (request.target !== undefined && !candidates.some((c) => c.host.name === request.target)) {
      throw new VirtnodeError('NOT_FOUND', `target: no host ${request.target} in the cluster`, { field: 'target', hint: 'see `virtnode cluster ls`' });
    }
    const { chosen, refusals } = choose(candidates, request, ratios);
    if (chosen === undefined) {
      const want = `${request.cpus} CPU(s), ${Math.round(request.memoryBytes / MIB)} MiB${request.diskBytes > 0 ? `, ${Math.round(request.diskBytes / MIB)} MiB disk in ${pool}` : ''}`;
      throw new VirtnodeError('CONFLICT', `no host has room for ${request.instance} (${want}): ${refusals.join(', ') || 'the cluster has no hosts'}`, {
        hint: request.target === undefined ? 'free some room, add a host, or lower the request' : 'choose another --target, or none',
      });
    }
    const u = chosen.usage;
    const next: HostUsage = {
      cpus: u.cpus + request.cpus,
      memoryBytes: u.memoryBytes + request.memoryBytes,
      diskBytes: { ...u.diskBytes, [pool]: (u.diskBytes[pool] ?? 0) + request.diskBytes },
      instances: u.instances + 1,
      groups: request.group === undefined ? u.groups : { ...u.groups, [request.group]: (u.groups[request.group] ?? 0) + 1 },
    };
    const claim: Claim = {
      instance: request.instance,
      host: chosen.host.name,
      cpus: request.cpus,
      memoryBytes: request.memoryBytes,
      diskBytes: request.diskBytes,
      pool,
      ...(request.group === undefined ? {} : { group: request.group }),
      ...(request.type === undefined ? {} : { type: request.type }),
      nonce: randomBytes(8).toString('hex'),
      claimedAt: new Date().toISOString(),
    };
    const usageKey = PLACEMENT_KEYS.usage(chosen.host.name);
    let won = false;
    try {
      won = (
        await kv.txn(
          [
            { key: usageKey, modRevision: chosen.usageEntry?.modRevision ?? 0 },
            { key: claimKey, modRevision: 0 },
          ],
          [
            { put: usageKey, value: JSON.stringify(next) },
            { put: claimKey, value: JSON.stringify(claim) },
          ],
        )
      ).won;
    } catch (e) {
      // No answer (a leader died mid-call): the transaction may have committed. Our nonce tells.
      const now = await kv.get(claimKey).catch(() => undefined);
      if (now === undefined || (JSON.parse(now.value) as Claim).nonce !== claim.nonce) {
        if (attempt >= maxAttempts) throw e;
        continue;
      }
      won = true;
    }
    if (!won) {
      // The client may have retried a transaction that had committed: then the claim there is ours.
      const now = await kv.get(claimKey);
      if (now !== undefined && (JSON.parse(now.value) as Claim).nonce === claim.nonce) won = true;
    }
    if (won) return claim;
    if (attempt >= maxAttempts) throw new VirtnodeError('BUSY', `placement of ${request.instance}: still contended after ${maxAttempts} attempts`, { hint: 'try again' });
  }
}

/** Gives the room of an instance's claim back (the instance was deleted, or its launch failed). */
export async function releaseClaim(kv: Kv, instance: string): Promise<boolean> {
  for (;;) {
    const claimEntry = await kv.get(PLACEMENT_KEYS.claim(instance));
    if (claimEntry === undefined) return false;
    const claim = JSON.parse(claimEntry.value) as Claim;
    const usageKey = PLACEMENT_KEYS.usage(claim.host);
    const usageEntry = await kv.get(usageKey);
    const u = usageEntry === undefined ? EMPTY_USAGE : (JSON.parse(usageEntry.value) as HostUsage);
    const groups = { ...u.groups };
    if (claim.group !== undefined) groups[claim.group] = Math.max(0, (groups[claim.group] ?? 1) - 1);
    const next: HostUsage = {
      cpus: Math.max(0, u.cpus - claim.cpus),
      memoryBytes: Math.max(0, u.memoryBytes - claim.memoryBytes),
      diskBytes: { ...u.diskBytes, [claim.pool]: Math.max(0, (u.diskBytes[claim.pool] ?? 0) - claim.diskBytes) },
      instances: Math.max(0, u.instances - 1),
      groups,
    };
    const r = await kv.txn(
      [
        { key: PLACEMENT_KEYS.claim(instance), modRevision: claimEntry.modRevision },
        { key: usageKey, modRevision: usageEntry?.modRevision ?? 0 },
      ],
      [{ delete: PLACEMENT_KEYS.claim(instance) }, { put: usageKey, value: JSON.stringify(next) }],
    );
    if (r.won) return true;
  }
}

/** The host an instance was placed on: its claim is the cluster's record of who runs it. */
export async function ownerOf(kv: Kv, instance: string): Promise<string | undefined> {
  const entry = await kv.get(PLACEMENT_KEYS.claim(instance));
  return entry === undefined ? undefined : (JSON.parse(entry.value) as Claim).host;
}

/**
 * Hands an instance's claim from host `from` to host `to` (a live move): the claim names the new owner and its
 * room moves from one usage record to the other, in one transaction guarded by the revisions of all three.
 * Refused when the claim does not name `from` (someone else moved or deleted it meanwhile). The ownership of the
 * instance's disks on shared pools (held by `from`) changes in the same transaction: `disks: 'move'` hands it to
 * `to` (a failover: the same disks, reserved for the start there, or a live move of an instance on a shared pool:
 * `diskHolder` names the target's QEMU, which runs it already), `'release'` gives it back (a move whose disks were
 * copied to the target). `extra` adds guards and writes of the caller's (a failover's record).
 */
export async function moveClaim(
  kv: Kv,
  instance: string,
  from: string,
  to: string,
  extra: (moved: Claim) => { guards: KvGuard[]; writes: KvWrite[] } = () => ({ guards: [], writes: [] }),
  options: { once?: boolean; disks?: 'move' | 'release'; diskHolder?: { process: ProcessIdentity; stateDir: string } } = {},
): Promise<Claim> {
  const claimKey = PLACEMENT_KEYS.claim(instance);
  for (;;) {
    const claimEntry = await kv.get(claimKey);
    if (claimEntry === undefined) throw new VirtnodeError('INVALID_STATE', `instance ${instance} has no placement claim in the cluster`, { field: 'name' });
    const claim = JSON.parse(claimEntry.value) as Claim;
    if (claim.host !== from) throw new VirtnodeError('CONFLICT', `instance ${instance} is placed on ${claim.host}, not on ${from}`, { field: 'name' });
    const [fromEntry, toEntry, disks] = await Promise.all([kv.get(PLACEMENT_KEYS.usage(from)), kv.get(PLACEMENT_KEYS.usage(to)), disksHeldBy(kv, from, instance)]);
    const source = fromEntry === undefined ? EMPTY_USAGE : (JSON.parse(fromEntry.value) as HostUsage);
    const target = toEntry === undefined ? EMPTY_USAGE : (JSON.parse(toEntry.value) as HostUsage);
    const group = (u: HostUsage, delta: number) => (claim.group === undefined ? u.groups : { ...u.groups, [claim.group]: Math.max(0, (u.groups[claim.group] ?? 0) + delta) });
    const shift = (u: HostUsage, sign: 1 | -1): HostUsage => ({
      cpus: Math.max(0, u.cpus + sign * claim.cpus),
      memoryBytes: Math.max(0, u.memoryBytes + sign * claim.memoryBytes),
      diskBytes: { ...u.diskBytes, [claim.pool]: Math.max(0, (u.diskBytes[claim.pool] ?? 0) + sign * claim.diskBytes) },
      instances: Math.max(0, u.instances + sign),
      groups: group(u, sign),
    });
    // A live move's mark goes with the move of the claim: the move is over.
    const { moving: _moving, ...kept } = claim;
    const moved: Claim = { ...kept, host: to, claimedAt: new Date().toISOString() };
    const more = extra(moved);
    const at = new Date().toISOString();
    // Moved disk claims name the new holder's process (a live move's QEMU, running there already) or, when it is not
    // known yet, pid 0: its start takes the claim as its own.
    const holder = options.diskHolder ?? { process: { pid: 0, start: '' } };
    const diskWrites: KvWrite[] = disks.map(({ entry, record }) =>
      options.disks === 'move' ? diskOwnerWrite({ ...record, host: to, ...holder, at } satisfies DiskOwnerRecord) : { delete: entry.key },
    );
    const r = await kv.txn(
      [
        { key: claimKey, modRevision: claimEntry.modRevision },
        { key: PLACEMENT_KEYS.usage(from), modRevision: fromEntry?.modRevision ?? 0 },
        { key: PLACEMENT_KEYS.usage(to), modRevision: toEntry?.modRevision ?? 0 },
        ...disks.map(({ entry }) => ({ key: entry.key, modRevision: entry.modRevision })),
        ...more.guards,
      ],
      [
        { put: claimKey, value: JSON.stringify(moved) },
        { put: PLACEMENT_KEYS.usage(from), value: JSON.stringify(shift(source, -1)) },
        { put: PLACEMENT_KEYS.usage(to), value: JSON.stringify(shift(target, 1)) },
        ...diskWrites,
        ...more.writes,
      ],
    );
    if (r.won) return moved;
    if (options.once === true) throw new VirtnodeError('CONFLICT', `instance ${instance}: its claim or records changed while it was moved to ${to}`, { field: 'name' });
  }
}
