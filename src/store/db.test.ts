import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDb } from './db.ts';

describe('the state database', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('keeps the database, its -wal and its -shm 0600 whatever the umask, and commits with synchronous=FULL', () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-db-'));
    dirs.push(dir);
    const path = join(dir, 'state.db');
    const umask = process.umask(0o002); // the most permissive umask an administrator plausibly has
    let db;
    try {
      db = openDb(path);
      db.prepare("INSERT INTO api_tokens (name, sha256, created_at) VALUES ('t', 'x', 'now')").run();
    } finally {
      process.umask(umask);
    }
    try {
      for (const file of [path, `${path}-wal`, `${path}-shm`]) expect((statSync(file).mode & 0o777).toString(8), file).toBe('600');
      expect(db.prepare('PRAGMA synchronous').get()).toEqual({ synchronous: 2 }); // FULL
    } finally {
      db.close();
    }
  });
});
