import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { VirtnodeError } from '../lib/errors.ts';
import type { Db } from './db.ts';

/** Tokens are shown once at creation; only their sha256 is stored. */
export const TOKEN_PREFIX = 'vn_';

export interface TokenInfo {
  name: string;
  createdAt: string;
  lastUsedAt: string | undefined;
}

interface TokenRow {
  name: string;
  sha256: string;
  created_at: string;
  last_used_at: string | null;
}

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
  create(name: string): { token: string; info: TokenInfo } {
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const createdAt = new Date().toISOString();
    try {
      this.db.prepare('INSERT INTO api_tokens (name, sha256, created_at) VALUES (?, ?, ?)').run(name, hashToken(token), createdAt);
    } catch (e) {
      if (this.db.prepare('SELECT 1 FROM api_tokens WHERE name = ?').get(name) !== undefined) {
        throw new VirtnodeError('CONFLICT', `token ${name} already exists`, { field: 'name', hint: 'revoke it first, or choose another name' });
      }
      throw e;
    }
    return { token, info: { name, createdAt, lastUsedAt: undefined } };
  }

  list(): TokenInfo[] {
    const rows = this.db.prepare('SELECT * FROM api_tokens ORDER BY name').all() as unknown as TokenRow[];
    return rows.map((r) => ({ name: r.name, createdAt: r.created_at, lastUsedAt: r.last_used_at ?? undefined }));
  }

  revoke(name: string): void {
    const result = this.db.prepare('DELETE FROM api_tokens WHERE name = ?').run(name);
    if (result.changes === 0) throw new VirtnodeError('NOT_FOUND', `token ${name} does not exist`, { hint: 'see `virtnode token ls`' });
  }

  /** The name of the token, if it is valid. The lookup is by hash, so timing reveals nothing of the token. */
  verify(token: string): string | undefined {
    const digest = hashToken(token);
    const row = this.db.prepare('SELECT * FROM api_tokens WHERE sha256 = ?').get(digest) as TokenRow | undefined;
    if (row === undefined || !timingSafeEqual(Buffer.from(row.sha256), Buffer.from(digest))) return undefined;
    // Recorded at most once a minute, so a busy client does not turn every request into a write.
    const now = Date.now();
    if (row.last_used_at === null || now - Date.parse(row.last_used_at) > 60_000) {
      this.db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE name = ?').run(new Date(now).toISOString(), row.name);
    }
    return row.name;
  }
}
