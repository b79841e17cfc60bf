import { describe, expect, it } from 'vitest';
import { digestOfName, holdersOf, listHolders, syncHeldImages } from './image-index.ts';
import type { Kv, KvEntry, KvWrite } from './kv.ts';
import { KEYS } from './model.ts';

/** The part of the Kv interface the image index uses, in memory (etcd itself is in the integration tests). */
function memoryKv(): Kv & { keys: () => string[]; txns: number } {
  const data = new Map<string, KvEntry>();
  let revision = 1;
  const kv = {
    txns: 0,
    keys: () => [...data.keys()].sort(),
    get: async (key: string) => data.get(key),
    list: async (prefix: string) => ({ entries: [...data.values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => a.key.localeCompare(b.key)), revision }),
    txn: async (_guards: unknown, writes: readonly KvWrite[]) => {
      kv.txns++;
      revision++;
      for (const w of writes) {
        if ('delete' in w) data.delete(w.delete);
        else data.set(w.put, { key: w.put, value: w.value, modRevision: revision, createRevision: revision, lease: '0' });
      }
      return { won: true, revision };
    },
    lease: () => Promise.reject(new Error('not here')),
    watch: () => Promise.reject(new Error('not here')),
    close: async () => undefined,
  };
  return kv as unknown as Kv & { keys: () => string[]; txns: number };
}

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const held = (sha256: string, ...names: string[]) => ({ sha256, names, format: 'qcow2', fileSize: 1024 });

describe('the cluster image index', () => {
  it("a host's sync writes its own keys only, changes only what changed, and removes what it no longer holds", async () => {
    const kv = memoryKv();
    await kv.txn([], [{ put: KEYS.alive('h1'), value: '{}' }, { put: KEYS.alive('h2'), value: '{}' }]);
    await syncHeldImages(kv, 'h1', [held(A, 'tiny'), held(B, 'debian', 'deb')]);
    await syncHeldImages(kv, 'h2', [held(A, 'tiny')]);
    expect(kv.keys().filter((k) => k.startsWith('/virtnode/images/'))).toEqual([`/virtnode/images/${A}/hosts/h1`, `/virtnode/images/${A}/hosts/h2`, `/virtnode/images/${B}/hosts/h1`]);
    const before = kv.txns;
    await syncHeldImages(kv, 'h1', [held(B, 'deb', 'debian'), held(A, 'tiny')]);
    expect(kv.txns).toBe(before); // nothing changed: names compared sorted, nothing written
    await syncHeldImages(kv, 'h1', [held(B, 'debian')]);
    expect((await holdersOf(kv, A)).map((h) => h.host)).toEqual(['h2']);
    expect(await holdersOf(kv, B)).toEqual([{ host: 'h1', sha256: B, names: ['debian'], format: 'qcow2', fileSize: 1024 }]);
  });

  it('hosts without a lease hold nothing as far as readers go; a name resolves to its digest, and two contents under one name are refused', async () => {
    const kv = memoryKv();
    await kv.txn([], [{ put: KEYS.alive('h1'), value: '{}' }, { put: KEYS.alive('h2'), value: '{}' }]);
    await syncHeldImages(kv, 'h1', [held(A, 'tiny')]);
    await syncHeldImages(kv, 'h3', [held(B, 'tiny')]); // offline: no live record
    expect((await listHolders(kv)).map((h) => h.host)).toEqual(['h1']);
    expect(await digestOfName(kv, 'tiny', 'image')).toBe(A);
    expect(await digestOfName(kv, 'nope', 'image')).toBeUndefined();
    await syncHeldImages(kv, 'h2', [held(B, 'tiny')]);
    await expect(digestOfName(kv, 'tiny', 'image')).rejects.toMatchObject({ code: 'CONFLICT', field: 'image', message: `image: hosts of the cluster hold different images named tiny (h1: ${A.slice(0, 12)}, h2: ${B.slice(0, 12)})` });
    await expect(holdersOf(kv, '../etc')).rejects.toMatchObject({ code: 'INVALID', field: 'sha256' });
  });
});
