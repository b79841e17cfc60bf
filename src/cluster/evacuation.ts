/**
 * The records of an evacuation in the shared store: the host's `evacuated` flag (out of placement) and, on each
 * claim of an instance the evacuation moved away, `evacuatedFrom` (where `cluster restore` brings it back to).
 * Both are revision-guarded writes: a loser reads again and writes again.
 */
import { VirtnodeError } from '../lib/errors.ts';
import type { Kv } from './kv.ts';
import { type HostRecord, KEYS } from './model.ts';
import { type Claim, PLACEMENT_KEYS } from './placement.ts';

/** Sets or clears a host's `evacuated` flag; `changed` is false when it was so already. */
export async function setEvacuated(kv: Kv, host: string, evacuated: boolean): Promise<{ record: HostRecord; changed: boolean }> {
  for (;;) {
    const entry = await kv.get(KEYS.host(host));
    if (entry === undefined) throw new VirtnodeError('NOT_FOUND', `host: no host ${host} in the cluster`, { field: 'host', hint: 'see `virtnode cluster ls`' });
    const record = JSON.parse(entry.value) as HostRecord;
    if ((record.evacuated === true) === evacuated) return { record, changed: false };
    const next: HostRecord = { ...record };
    if (evacuated) next.evacuated = true;
    else delete next.evacuated;
    const r = await kv.txn([{ key: KEYS.host(host), modRevision: entry.modRevision }], [{ put: KEYS.host(host), value: JSON.stringify(next) }]);
    if (r.won) return { record: next, changed: true };
  }
}

/** Every claim in the cluster (the record of which host runs which instance), sorted by instance name. */
export async function listClaims(kv: Kv): Promise<Claim[]> {
  return (await kv.list(PLACEMENT_KEYS.claims)).entries.map((e) => JSON.parse(e.value) as Claim).sort((a, b) => a.instance.localeCompare(b.instance));
}

/**
 * Records on an instance's claim the host an evacuation moved it away from (`from`), or forgets it (undefined).
 * False when the instance has no claim (deleted meanwhile).
 */
export async function markEvacuatedFrom(kv: Kv, instance: string, from: string | undefined): Promise<boolean> {
  const key = PLACEMENT_KEYS.claim(instance);
  for (;;) {
    const entry = await kv.get(key);
    if (entry === undefined) return false;
    const claim = JSON.parse(entry.value) as Claim;
    if (claim.evacuatedFrom === from) return true;
    const next: Claim = { ...claim };
    if (from === undefined) delete next.evacuatedFrom;
    else next.evacuatedFrom = from;
    const r = await kv.txn([{ key, modRevision: entry.modRevision }], [{ put: key, value: JSON.stringify(next) }]);
    if (r.won) return true;
  }
}
