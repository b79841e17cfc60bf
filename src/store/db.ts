import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { VirtnodeError } from '../lib/errors.ts';
import { mapNoSpaceSync, named } from '../lib/no-space.ts';
import { MIGRATIONS } from './migrations.ts';

const BUSY_TIMEOUT_MS = 10_000;

export type Db = DatabaseSync;

/** Opens (creating if needed) the state database and brings its schema up to date. */
export function openDb(path: string): Db {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (e) {
    throw new VirtnodeError('PERMISSION', `cannot open the state database ${path}`, {
      cause: e,
      hint: 'check the permissions of the state directory, or set VIRTNODE_HOME',
    });
  }
  // Before the first write: SQLite gives the -wal and -shm files the database file's mode.
  chmodSync(path, 0o600);
  // WAL: readers never block the writer. FULL: a commit is on disk (the WAL fsynced) before it returns, so a
  // power loss does not undo what a command reported done.
  // On a full disk even reading fails here (WAL mode grows the -shm file first): say so, with where.
  mapNoSpaceSync(`open the state database ${path}`, dirname(path), () => {
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;');
    migrate(db);
  });
  return db;
}

function migrate(db: Db): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
  // Applied by set difference, not "above the highest": features developed side by side may land in any order.
  const applied = (): Set<number> =>
    new Set((db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map((r) => r.version));
  if (MIGRATIONS.every((m) => applied().has(m.version))) return;
  transaction(db, () => {
    // Another process may have migrated between our read and our write lock.
    const done = applied();
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(m.version, new Date().toISOString());
    }
  });
}

/**
 * Runs `fn` in an IMMEDIATE transaction (takes the write lock up front, so read-then-write is atomic). On a
 * full disk it is rolled back and NO_SPACE names the state directory.
 */
export function transaction<T>(db: Db, fn: () => T): T {
  try {
    db.exec('BEGIN IMMEDIATE');
    try {
      const result = fn();
      db.exec('COMMIT');
      return result;
    } catch (e) {
      // SQLite has rolled back by itself after some errors (SQLITE_FULL, an I/O error): a second ROLLBACK
      // would throw and hide the error that matters.
      if (db.isTransaction) db.exec('ROLLBACK');
      throw e;
    }
  } catch (e) {
    const file = db.location();
    throw file === null ? e : named(e, 'write the state database', dirname(file));
  }
}
