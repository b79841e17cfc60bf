import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { VirtnodeError } from '../lib/errors.ts';
import type { Db } from './db.ts';

/** Tokens are shown once at creation; only their sha256 is stored. */
export const TOKEN_PREFIX = 'vn_';

/** `admin`: the whole API. `read-only`: what changes nothing (GET, and the tickets of the events stream). */
export const TOKEN_SCOPES = ['admin', 'read-only'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

export interface TokenInfo {
  name: string;
  scope: TokenScope;
  createdAt: string;
  expiresAt: string | undefined;
  lastUsedAt: string | undefined;
}

interface TokenRow {
  name: string;
  sha256: string;
  scope: TokenScope;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
}

const info = (r: TokenRow): TokenInfo => ({ name: r.name, scope: r.scope, createdAt: r.created_at, expiresAt: r.expires_at ?? undefined, lastUsedAt: r.last_used_at ?? undefined });

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Bearer tokens for the API over TCP. */
export class TokenRepository {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  /** Makes a token of 256 random bits; the caller shows it once, it cannot be read back. */
  create(name: string, options: { scope?: TokenScope; validForMs?: number } = {}): { token: string; info: TokenInfo } {
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const now = Date.now();
    const row: TokenRow = {
      name,
      sha256: hashToken(token),
      scope: options.scope ?? 'admin',
      created_at: new Date(now).toISOString(),
      expires_at: options.validForMs === undefined ? null : new Date(now + options.validForMs).toISOString(),
      last_used_at: null,
    };
    try {
      this.db.prepare('INSERT INTO api_tokens (name, sha256, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?)').run(row.name, row.sha256, row.scope, row.created_at, row.expires_at);
    } catch (e) {
      if (this.db.prepare('SELECT 1 FROM api_tokens WHERE name = ?').get(name) !== undefined) {
        throw new VirtnodeError('CONFLICT', `token ${name} already exists`, { field: 'name', hint: 'revoke it first, or choose another name' });
      }
      throw e;
    }
    return { token, info: info(row) };
  }

  list(): TokenInfo[] {
    return (this.db.prepare('SELECT * FROM api_tokens ORDER BY name').all() as unknown as TokenRow[]).map(info);
  }

  revoke(name: string): void {
    const result = this.db.prepare('DELETE FROM api_tokens WHERE name = ?').run(name);
    if (result.changes === 0) throw new VirtnodeError('NOT_FOUND', `token ${name} does not exist`, { hint: 'see `virtnode token ls`' });
  }

  /** The token exists and has not expired (streams opened with it stay open). */
  valid(name: string): boolean {
    const row = this.db.prepare('SELECT expires_at FROM api_tokens WHERE name = ?').get(name) as { expires_at: string | null } | undefined;
    return row !== undefined && (row.expires_at === null || Date.parse(row.expires_at) > Date.now());
  }

  /** The token's name and scope, if it is known and not expired. The lookup is by hash, so timing reveals nothing of the token. */
  verify(token: string): { name: string; scope: TokenScope } | undefined {
    const digest = hashToken(token);
    const row = this.db.prepare('SELECT * FROM api_tokens WHERE sha256 = ?').get(digest) as TokenRow | undefined;
    if (row === undefined || !timingSafeEqual(Buffer.from(row.sha256), Buffer.from(digest))) return undefined;
    const now = Date.now();
    if (row.expires_at !== null && Date.parse(row.expires_at) <= now) return undefined;
    // Recorded at most once a minute, so a busy client does not turn every request into a write.
    if (row.last_used_at === null || now - Date.parse(row.last_used_at) > 60_000) {
      this.db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE name = ?').run(new Date(now).toISOString(), row.name);
    }
    return { name: row.name, scope: row.scope };
  }
}
