/**
 * The join token `cluster add HOST` prints: one string carrying what the new host needs to find and trust the
 * cluster (the issuing host's API, the CA's SHA-256 fingerprint) and a secret that etcd knows only as a hash.
 * Single use (the join consumes it in a revision-guarded transaction) and expiring.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { VirtnodeError } from '../lib/errors.ts';

const PREFIX = 'vnjoin1.';

export interface JoinToken {
  clusterId: string;
  id: string;
  secret: string;
  host: string;
  /** SHA-256 fingerprint of the cluster CA, `AA:BB:...`. */
  caFingerprint: string;
  /** The issuing host's cluster API. */
  apiUrl: string;
  expiresAt: string;
}

export function newTokenSecret(): { id: string; secret: string } {
  return { id: randomBytes(8).toString('hex'), secret: randomBytes(24).toString('base64url') };
}

export const secretHash = (secret: string) => createHash('sha256').update(secret).digest('hex');

export function secretMatches(secret: string, hash: string): boolean {
  const a = Buffer.from(secretHash(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export function encodeJoinToken(t: JoinToken): string {
  return PREFIX + Buffer.from(JSON.stringify({ c: t.clusterId, i: t.id, s: t.secret, h: t.host, f: t.caFingerprint, u: t.apiUrl, e: t.expiresAt })).toString('base64url');
}

const notAToken = (why: string) => new VirtnodeError('INVALID', `token: not a virtnode join token (${why})`, { field: 'token', hint: 'print one with `virtnode cluster add HOSTNAME` on a cluster host' });

export function decodeJoinToken(text: string): JoinToken {
  const s = text.trim();
  if (!s.startsWith(PREFIX)) throw notAToken(`it does not start with ${PREFIX}`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(Buffer.from(s.slice(PREFIX.length), 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw notAToken('it does not decode');
  }
  const str = (k: string) => {
    const v = raw[k];
    if (typeof v !== 'string' || v === '') throw notAToken(`field ${k} missing`);
    return v;
  };
  const token: JoinToken = { clusterId: str('c'), id: str('i'), secret: str('s'), host: str('h'), caFingerprint: str('f'), apiUrl: str('u'), expiresAt: str('e') };
  if (!/^[0-9a-f]{16}$/.test(token.id)) throw notAToken('bad id');
  if (!/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/.test(token.caFingerprint)) throw notAToken('bad CA fingerprint');
  if (!/^https:\/\//.test(token.apiUrl)) throw notAToken('bad API URL');
  if (Number.isNaN(Date.parse(token.expiresAt))) throw notAToken('bad expiry');
  return token;
}
