/**
 * Which host holds which image, cluster-wide: one etcd key per image and host,
 * `/virtnode/images/<sha256>/hosts/<host>`, whose value names the image on that host. An image is known in the
 * cluster by its sha256 (the digest of its stored file); its names are each host's own. A host writes only its
 * own keys (`syncHeldImages`, on every change to its store and at daemon start); readers keep only online hosts.
 */
import { VirtnodeError, invalid } from '../lib/errors.ts';
import type { Kv, KvWrite } from './kv.ts';
import { KEYS } from './model.ts';

export const IMAGE_KEYS = {
  prefix: '/virtnode/images/',
  holder: (sha256: string, host: string) => `/virtnode/images/${sha256}/hosts/${host}`,
} as const;

const SHA256 = /^[0-9a-f]{64}$/;

export function checkSha256(field: string, value: string): string {
  if (!SHA256.test(value)) throw invalid(field, `"${value}" is not a sha256 (64 lower-case hexadecimal digits)`);
  return value;
}

/** What a host holds of one image (the value of its key). */
export interface HeldImage {
  sha256: string;
  /** The names this host stores it under. */
  names: string[];
  format: string;
  fileSize: number;
}

export interface ImageHolder extends HeldImage {
  host: string;
}

function parseKey(key: string): { sha256: string; host: string } | undefined {
  const m = /^\/virtnode\/images\/([0-9a-f]{64})\/hosts\/([^/]+)$/.exec(key);
  return m === null ? undefined : { sha256: m[1]!, host: m[2]! };
}

/** Every (image, host) pair the cluster knows, of hosts online now (holding their lease). */
export async function listHolders(kv: Kv, prefix: string = IMAGE_KEYS.prefix): Promise<ImageHolder[]> {
  const [held, alive] = await Promise.all([kv.list(prefix), kv.list(KEYS.alives)]);
  const online = new Set(alive.entries.map((e) => e.key.slice(KEYS.alives.length)));
  const out: ImageHolder[] = [];
  for (const e of held.entries) {
    const k = parseKey(e.key);
    if (k === undefined || !online.has(k.host)) continue;
    out.push({ ...(JSON.parse(e.value) as HeldImage), sha256: k.sha256, host: k.host });
  }
  return out;
}

/** The online hosts that hold the image with this sha256. */
export async function holdersOf(kv: Kv, sha256: string): Promise<ImageHolder[]> {
  return listHolders(kv, `${IMAGE_KEYS.prefix}${checkSha256('sha256', sha256)}/hosts/`);
}

/**
 * The sha256 of the image called `name` on the cluster's online hosts, or undefined when none has one. Two hosts
 * holding different content under one name is refused: the caller must say which (`imageSha256`).
 */
export async function digestOfName(kv: Kv, name: string, field: string): Promise<string | undefined> {
  const matches = (await listHolders(kv)).filter((h) => h.names.includes(name));
  const digests = [...new Set(matches.map((h) => h.sha256))];
  if (digests.length > 1) {
    const where = matches.map((h) => `${h.host}: ${h.sha256.slice(0, 12)}`).join(', ');
    throw new VirtnodeError('CONFLICT', `${field}: hosts of the cluster hold different images named ${name} (${where})`, {
      field,
      hint: 'give the one to launch by its sha256 (imageSha256 in the API), or rename one of them',
    });
  }
  return digests[0];
}

/** Makes this host's keys say exactly what it holds: puts what changed, deletes what it no longer holds. */
export async function syncHeldImages(kv: Kv, host: string, held: readonly HeldImage[]): Promise<void> {
  const mine = (await kv.list(IMAGE_KEYS.prefix)).entries.filter((e) => parseKey(e.key)?.host === host);
  const want = new Map(held.map((h) => [IMAGE_KEYS.holder(h.sha256, host), JSON.stringify({ ...h, names: [...h.names].sort() })]));
  const writes: KvWrite[] = [];
  for (const e of mine) if (!want.has(e.key)) writes.push({ delete: e.key });
  const have = new Map(mine.map((e) => [e.key, e.value]));
  for (const [key, value] of want) if (have.get(key) !== value) writes.push({ put: key, value });
  if (writes.length > 0) await kv.txn([], writes);
}

/** A host removed from the cluster holds nothing any more. */
export function forgetHeldImages(kv: Kv, host: string): Promise<void> {
  return syncHeldImages(kv, host, []);
}
