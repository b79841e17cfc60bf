/**
 * The plan of `cluster rebalance`: which instances to move where so that the hosts' loads even out. Pure: the same
 * hosts and instances always give the same plan. A host's load is its dominant share, the larger of its claimed
 * CPUs and claimed memory over what placement lets it hold (capacity times the overcommit ratio); the spread is
 * the busiest host's load minus the idlest one's. While the spread is above the threshold, the plan moves one
 * instance from the busiest host to the idlest host that can take it (placement's own room check, anti-affinity
 * groups never made worse), choosing the instance that leaves the smallest spread; a move must make the spread
 * smaller, and no instance moves twice.
 */
import { type Candidate, type Claim, type HostUsage, type OvercommitRatios, unfit } from './placement.ts';

/** An instance as its claim weighs it on its host. */
export type BalanceInstance = Pick<Claim, 'host' | 'cpus' | 'memoryBytes' | 'diskBytes' | 'pool' | 'group'> & {
  name: string;
  /** A running VM that can move live; others weigh on their host but stay. */
  movable: boolean;
};

export interface HostLoad {
  name: string;
  cpuPercent: number;
  memoryPercent: number;
  /** The larger of the two. */
  loadPercent: number;
}

export interface PlannedMove {
  name: string;
  from: string;
  to: string;
  why: string;
}

export interface RebalancePlan {
  thresholdPercent: number;
  spreadBeforePercent: number;
  /** The spread once every planned move is made. */
  spreadAfterPercent: number;
  /** The spread was within the threshold already: nothing to move. */
  balanced: boolean;
  hosts: HostLoad[];
  moves: PlannedMove[];
  /** Why the plan stops where it does, in words. */
  note: string;
}

export const DEFAULT_THRESHOLD_PERCENT = 10;

const round1 = (x: number) => Math.round(x * 10) / 10;

interface Slot {
  c: Candidate;
  cpuCap: number;
  memCap: number;
}

function shares(s: Slot): { cpu: number; mem: number; load: number } {
  const cpu = (100 * s.c.usage.cpus) / Math.max(1, s.cpuCap);
  const mem = (100 * s.c.usage.memoryBytes) / Math.max(1, s.memCap);
  return { cpu, mem, load: Math.max(cpu, mem) };
}

const spreadOf = (slots: Slot[]) => {
  const loads = slots.map((s) => shares(s).load);
  return Math.max(...loads) - Math.min(...loads);
};

function shifted(u: HostUsage, i: BalanceInstance, sign: 1 | -1): HostUsage {
  const groups = { ...u.groups };
  if (i.group !== undefined) groups[i.group] = Math.max(0, (groups[i.group] ?? 0) + sign);
  return {
    cpus: Math.max(0, u.cpus + sign * i.cpus),
    memoryBytes: Math.max(0, u.memoryBytes + sign * i.memoryBytes),
    diskBytes: { ...u.diskBytes, [i.pool]: Math.max(0, (u.diskBytes[i.pool] ?? 0) + sign * i.diskBytes) },
    instances: Math.max(0, u.instances + sign),
    groups,
  };
}

const describe = (s: Slot) => {
  const x = shares(s);
  return `${s.c.host.name} (CPU ${round1(x.cpu)}%, memory ${round1(x.mem)}%)`;
};

/**
 * The moves that even out the hosts' loads (see the top of this file). Only online, non-evacuated hosts take part,
 * as sources and as targets; `maxMoves` bounds the plan.
 */
export function planRebalance(candidates: Candidate[], instances: BalanceInstance[], ratios: OvercommitRatios, options: { thresholdPercent?: number; maxMoves?: number } = {}): RebalancePlan {
  const thresholdPercent = options.thresholdPercent ?? DEFAULT_THRESHOLD_PERCENT;
  const slots: Slot[] = candidates
    .filter((c) => c.alive !== undefined && c.host.evacuated !== true)
    .sort((a, b) => a.host.name.localeCompare(b.host.name))
    .map((c) => ({ c: { ...c, usage: { ...c.usage } }, cpuCap: Math.floor(c.alive!.capacity.cpus * ratios.cpu), memCap: Math.floor(c.alive!.capacity.memoryBytes * ratios.memory) }));
  const hosts = slots.map((s) => {
    const x = shares(s);
    return { name: s.c.host.name, cpuPercent: round1(x.cpu), memoryPercent: round1(x.mem), loadPercent: round1(x.load) };
  });
  const plan = (moves: PlannedMove[], balanced: boolean, spreadBefore: number, note: string): RebalancePlan => ({
    thresholdPercent,
    spreadBeforePercent: round1(spreadBefore),
    spreadAfterPercent: round1(slots.length < 2 ? 0 : spreadOf(slots)),
    balanced,
    hosts,
    moves,
    note,
  });
  if (slots.length < 2) return plan([], true, 0, `${slots.length} online host(s) that can take instances: nothing to balance between`);
  const spreadBefore = spreadOf(slots);
  if (spreadBefore <= thresholdPercent) {
    return plan([], true, spreadBefore, `balanced: the loads differ by ${round1(spreadBefore)}%, within the threshold of ${thresholdPercent}%; nothing to move`);
  }
  const bySlot = new Map(slots.map((s) => [s.c.host.name, s]));
  const movable = instances.filter((i) => i.movable && bySlot.has(i.host)).sort((a, b) => a.name.localeCompare(b.name));
  const moved = new Set<string>();
  const moves: PlannedMove[] = [];
  const maxMoves = options.maxMoves ?? instances.length;
  let note = '';
  while (moves.length < maxMoves) {
    const before = spreadOf(slots);
    if (before <= thresholdPercent) {
      note = `the loads will differ by ${round1(before)}%, within the threshold of ${thresholdPercent}%`;
      break;
    }
    const ordered = [...slots].sort((a, b) => shares(b).load - shares(a).load || a.c.host.name.localeCompare(b.c.host.name));
    const source = ordered[0]!;
    const targets = ordered.slice(1).sort((a, b) => shares(a).load - shares(b).load || a.c.host.name.localeCompare(b.c.host.name));
    let best: { i: BalanceInstance; target: Slot; after: number } | undefined;
    for (const target of targets) {
      for (const i of movable) {
        if (i.host !== source.c.host.name || moved.has(i.name)) continue;
        const request = { instance: i.name, cpus: i.cpus, memoryBytes: i.memoryBytes, diskBytes: i.diskBytes, pool: i.pool };
        if (unfit(target.c, request, ratios) !== undefined) continue;
        if (i.group !== undefined && (target.c.usage.groups[i.group] ?? 0) >= (source.c.usage.groups[i.group] ?? 0)) continue;
        const [su, tu] = [source.c.usage, target.c.usage];
        source.c.usage = shifted(su, i, -1);
        target.c.usage = shifted(tu, i, 1);
        const after = spreadOf(slots);
        [source.c.usage, target.c.usage] = [su, tu];
        if (after < before - 1e-9 && (best === undefined || after < best.after - 1e-9)) best = { i, target, after };
      }
      if (best !== undefined) break;
    }
    if (best === undefined) {
      note = `no single move of a running VM off ${source.c.host.name} evens the loads out further (the loads differ by ${round1(before)}%)`;
      break;
    }
    const why = `${describe(source)} is the busiest, ${describe(best.target)} the idlest that has room: the loads will differ by ${round1(best.after)}% instead of ${round1(before)}%`;
    source.c.usage = shifted(source.c.usage, best.i, -1);
    best.target.c.usage = shifted(best.target.c.usage, best.i, 1);
    moved.add(best.i.name);
    moves.push({ name: best.i.name, from: source.c.host.name, to: best.target.c.host.name, why });
  }
  if (note === '') note = `stopped after ${moves.length} move(s), the most one plan makes`;
  return plan(moves, false, spreadBefore, note);
}
