import { describe, expect, it } from 'vitest';
import type { Kv, KvEntry, KvGuard, KvWrite } from './kv.ts';
import { markMoving, unmarkMoving } from './move-mark.ts';
import { type Claim, PLACEMENT_KEYS, moveClaim } from './placement.ts';

/** The part of Kv that claims use (get, list, txn), revision-guarded as etcd is. */
function memoryKv(): Kv {
  const data = new Map<string, KvEntry>();
  let revision = 1;
  const kv = {
    get: async (key: string) => data.get(key),
    list: async (prefix: string) => ({ entries: [...data.values()].filter((e) => e.key.startsWith(prefix)), revision }),
    txn: async (guards: readonly KvGuard[], writes: readonly KvWrite[]) => {
      if (!guards.every((g) => (data.get(g.key)?.modRevision ?? 0) === g.modRevision)) return { won: false, revision };
      revision++;
      for (const w of writes) {
        if ('delete' in w) data.delete(w.delete);
        else data.set(w.put, { key: w.put, value: w.value, modRevision: revision, createRevision: data.get(w.put)?.createRevision ?? revision, lease: '0' });
      }
      return { won: true, revision };
    },
  };
  return kv as unknown as Kv;
}

const claimOf = async (kv: Kv) => JSON.parse((await kv.get(PLACEMENT_KEYS.claim('c1')))!.value) as Claim;

async function placed(host: string): Promise<Kv> {
  const kv = memoryKv();
  const claim: Claim = { instance: 'c1', host, cpus: 1, memoryBytes: 128 << 20, diskBytes: 0, pool: 'default', nonce: 'n', claimedAt: new Date().toISOString() };
  await kv.txn([], [{ put: PLACEMENT_KEYS.claim('c1'), value: JSON.stringify(claim) }]);
  return kv;
}

describe('the mark a live move leaves on its claim', () => {
  it('is written only on a claim naming the source, and the rest of the claim is kept', async () => {
    const kv = await placed('h1');
    await markMoving(kv, 'c1', 'h1', 'h2', 'm1');
    expect(await claimOf(kv)).toMatchObject({ host: 'h1', cpus: 1, moving: { to: 'h2', id: 'm1' } });
    await expect(markMoving(kv, 'c1', 'h3', 'h2', 'm2')).rejects.toMatchObject({ code: 'CONFLICT' });
    expect((await claimOf(kv)).moving?.id).toBe('m1');
  });

  it('goes when the move is undone, only for its own move', async () => {
    const kv = await placed('h1');
    await markMoving(kv, 'c1', 'h1', 'h2', 'm1');
    expect(await unmarkMoving(kv, 'c1', 'other')).toBe(false);
    expect((await claimOf(kv)).moving?.id).toBe('m1');
    expect(await unmarkMoving(kv, 'c1', 'm1')).toBe(true);
    const claim = await claimOf(kv);
    expect(claim.moving).toBeUndefined();
    expect(claim.host).toBe('h1');
  });

  it('goes with the claim when it moves to the target', async () => {
    const kv = await placed('h1');
    await markMoving(kv, 'c1', 'h1', 'h2', 'm1');
    await moveClaim(kv, 'c1', 'h1', 'h2');
    const claim = await claimOf(kv);
    expect(claim.host).toBe('h2');
    expect(claim.moving).toBeUndefined();
    expect(await unmarkMoving(kv, 'c1', 'm1')).toBe(false);
  });
});
