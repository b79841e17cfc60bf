import { describe, expect, it } from 'vitest';
import type { Candidate, HostUsage } from './placement.ts';
import { type BalanceInstance, planRebalance } from './rebalance.ts';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const ratios = { cpu: 4, memory: 1 };

function host(name: string, instances: BalanceInstance[], o: { evacuated?: boolean; offline?: boolean } = {}): Candidate {
  const mine = instances.filter((i) => i.host === name);
  const groups: Record<string, number> = {};
  for (const i of mine) if (i.group !== undefined) groups[i.group] = (groups[i.group] ?? 0) + 1;
  const usage: HostUsage = { cpus: mine.reduce((n, i) => n + i.cpus, 0), memoryBytes: mine.reduce((n, i) => n + i.memoryBytes, 0), diskBytes: {}, instances: mine.length, groups };
  return {
    host: { name, address: '10.0.0.1', apiUrl: 'https://10.0.0.1:7443', etcdMember: false, joinedAt: '', ...(o.evacuated === true ? { evacuated: true } : {}) },
    alive: o.offline === true ? undefined : { name, since: '', updatedAt: '', capacity: { cpus: 2, memoryBytes: 24 * GIB, pools: [], accelerator: 'tcg', cpuFlags: [] }, use: { instances: 0, running: 0, cpus: 0, memoryBytes: 0 }, labels: {} },
    usage,
    usageEntry: undefined,
  };
}

const vm = (name: string, on: string, extra: Partial<BalanceInstance> = {}): BalanceInstance => ({ name, host: on, cpus: 1, memoryBytes: 128 * MIB, diskBytes: 0, pool: 'default', movable: true, ...extra });

describe('planRebalance', () => {
  it('moves from the busiest host to the idlest until within the threshold, the same plan every time', () => {
    const instances = [vm('c', 'h1'), vm('a', 'h1'), vm('b', 'h1')];
    const hosts = [host('h3', instances), host('h1', instances), host('h2', instances)];
    const plan = planRebalance(hosts, instances, ratios);
    expect(plan.moves.map((m) => [m.name, m.from, m.to])).toEqual([
      ['a', 'h1', 'h2'],
      ['b', 'h1', 'h3'],
    ]);
    expect(plan).toMatchObject({ balanced: false, spreadBeforePercent: 37.5, spreadAfterPercent: 0 });
    expect(plan.moves[0]!.why).toBe('h1 (CPU 37.5%, memory 1.6%) is the busiest, h2 (CPU 0%, memory 0%) the idlest that has room: the loads will differ by 25% instead of 37.5%');
    expect(planRebalance([...hosts].reverse(), [...instances].reverse(), ratios)).toEqual(plan);
  });

  it('says so and moves nothing when the cluster is balanced within the threshold', () => {
    const instances = [vm('a', 'h1'), vm('b', 'h2'), vm('c', 'h2')];
    const hosts = [host('h1', instances), host('h2', instances)];
    const plan = planRebalance(hosts, instances, ratios, { thresholdPercent: 15 });
    expect(plan.moves).toEqual([]);
    expect(plan.balanced).toBe(true);
    expect(plan.note).toBe('balanced: the loads differ by 12.5%, within the threshold of 15%; nothing to move');
    // Above the threshold, but a move would only swap the roles of the two hosts: none is made.
    const tight = planRebalance(hosts, instances, ratios);
    expect([tight.balanced, tight.moves]).toEqual([false, []]);
  });

  it('leaves evacuated and offline hosts out, stopped instances in place, and never makes anti-affinity worse', () => {
    const instances = [vm('a', 'h1', { group: 'g' }), vm('b', 'h1', { movable: false }), vm('c', 'h1', { movable: false }), vm('d', 'h2', { group: 'g' })];
    const hosts = [host('h1', instances), host('h2', instances), host('h3', instances, { evacuated: true }), host('h4', instances, { offline: true })];
    const plan = planRebalance(hosts, instances, ratios);
    expect(plan.hosts.map((h) => h.name)).toEqual(['h1', 'h2']);
    expect(plan.moves).toEqual([]);
    expect(plan.note).toBe('no single move of a running VM off h1 evens the loads out further (the loads differ by 25%)');
  });
});
