/**
 * The mark a live move leaves on the instance's claim in etcd while it is under way (`moving: { to, id, at }`):
 * written before the migration starts, in a transaction guarded by the claim's revision and by the claim naming
 * the source; gone when the claim moves to the target (moveClaim drops it) or when the move is undone. Failover
 * (src/app/cluster-failover.ts) never restarts a marked instance on a third host while the target may run it.
 */
import { VirtnodeError } from '../lib/errors.ts';
import type { Kv } from './kv.ts';
import { type Claim, type MovingMark, PLACEMENT_KEYS } from './placement.ts';

/** Marks `instance`'s claim (which must name `from`) as moving to `to` by move `id`. */
export async function markMoving(kv: Kv, instance: string, from: string, to: string, id: string): Promise<void> {
  const key = PLACEMENT_KEYS.claim(instance);
  for (let attempt = 0; attempt < 5; attempt++) {
    const entry = await kv.get(key);
    if (entry === undefined) throw new VirtnodeError('INVALID_STATE', `instance ${instance} has no placement claim in the cluster`, { field: 'name' });
    const claim = JSON.parse(entry.value) as Claim;
    if (claim.host !== from) throw new VirtnodeError('CONFLICT', `instance ${instance} is placed on ${claim.host}, not on ${from}`, { field: 'name' });
    const moving: MovingMark = { to, id, at: new Date().toISOString() };
    const r = await kv.txn([{ key, modRevision: entry.modRevision }], [{ put: key, value: JSON.stringify({ ...claim, moving } satisfies Claim) }]);
    if (r.won) return;
  }
  throw new VirtnodeError('CONFLICT', `instance ${instance}: its claim kept changing while the move was marked on it`, { field: 'name' });
}

/**
 * Removes move `id`'s mark (the move was undone: the guest runs where the claim says). Nothing to do when the claim
 * carries no mark of that move (the claim moved, or another move marked it). Answers whether it removed one.
 */
export async function unmarkMoving(kv: Kv, instance: string, id: string): Promise<boolean> {
  const key = PLACEMENT_KEYS.claim(instance);
  for (;;) {
    const entry = await kv.get(key);
    if (entry === undefined) return false;
    const claim = JSON.parse(entry.value) as Claim;
    if (claim.moving?.id !== id) return false;
    const { moving: _moving, ...rest } = claim;
    const r = await kv.txn([{ key, modRevision: entry.modRevision }], [{ put: key, value: JSON.stringify(rest) }]);
    if (r.won) return true;
  }
}
