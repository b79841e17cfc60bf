/**
 * Instances whose host cannot answer (its lease expired, or it did not answer a list) are shown rather than left
 * out: from the cluster's records in etcd, with the host and state `unknown`, and the reason. The claim
 * (`/virtnode/claims/NAME`) gives the name, host, type, CPUs and memory; a failover candidate's record
 * (`/virtnode/failover/NAME`) gives the whole instance as its owner last published it.
 */
import type { InstanceView } from '../api/schemas.ts';
import type { Kv } from '../cluster/kv.ts';
import { type Claim, PLACEMENT_KEYS } from '../cluster/placement.ts';
import { FAILOVER_KEYS, type FailoverRecord } from './cluster-failover.ts';
import { instanceView } from './views.ts';

const MIB = 1024 * 1024;

/** Why a host's instances are not known now: it holds no lease. */
export const offlineHostReason = (host: string): string => `host ${host} is offline (it holds no cluster lease)`;

function unknownView(claim: Claim, why: string, record: FailoverRecord | undefined): InstanceView {
  if (record !== undefined && record.host === claim.host) {
    const last = record.running ? 'running' : record.instance.state;
    const { pid: _pid, ...view } = instanceView(record.instance, record.policy);
    return { ...view, host: claim.host, state: 'unknown', reason: `${why}; last known state ${last}` };
  }
  // Only the claim is known: what it does not hold stays empty.
  return {
    name: claim.instance,
    host: claim.host,
    type: claim.type ?? 'vm',
    state: 'unknown',
    reason: why,
    uuid: '',
    smbiosUuid: '',
    cpus: claim.cpus,
    memoryMiB: Math.round(claim.memoryBytes / MIB),
    accel: '',
    disks: [],
    nics: [],
    createdAt: claim.claimedAt,
    updatedAt: claim.claimedAt,
  };
}

/** The instances claimed on `hosts` (host name to why it cannot answer), as far as etcd knows them. */
export async function unreachableInstances(kv: Kv, hosts: ReadonlyMap<string, string>): Promise<InstanceView[]> {
  if (hosts.size === 0) return [];
  const [claims, records] = await Promise.all([kv.list(PLACEMENT_KEYS.claims), kv.list(FAILOVER_KEYS.records)]);
  const recordOf = new Map(records.entries.map((e) => [e.key.slice(FAILOVER_KEYS.records.length), JSON.parse(e.value) as FailoverRecord]));
  const out: InstanceView[] = [];
  for (const e of claims.entries) {
    const claim = JSON.parse(e.value) as Claim;
    const why = hosts.get(claim.host);
    if (why !== undefined) out.push(unknownView(claim, why, recordOf.get(claim.instance)));
  }
  return out;
}

/** One instance claimed on a host that cannot answer, or undefined when its claim names another host now. */
export async function unreachableInstance(kv: Kv, name: string, host: string, why: string): Promise<InstanceView | undefined> {
  const [claim, record] = await Promise.all([kv.get(PLACEMENT_KEYS.claim(name)), kv.get(FAILOVER_KEYS.record(name))]);
  if (claim === undefined) return undefined;
  const c = JSON.parse(claim.value) as Claim;
  if (c.host !== host) return undefined;
  return unknownView(c, why, record === undefined ? undefined : (JSON.parse(record.value) as FailoverRecord));
}
