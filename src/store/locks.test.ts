import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDb } from './db.ts';
import { acquireLock, lockOwner, withLockIfFree } from './locks.ts';
import { MIGRATIONS } from './migrations.ts';

describe('instance locks', () => {
  const dirs: string[] = [];
  const db = () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-locks-'));
    dirs.push(dir);
    return openDb(join(dir, 'state.db'));
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('serializes holders of one name and leaves other names free', async () => {
    const d = db();
    const release = await acquireLock(d, 'a', 'stop');
    await expect(acquireLock(d, 'a', 'start', { waitMs: 50 })).rejects.toThrow(/instance a is busy: stop by process \d+/);
    const other = await acquireLock(d, 'b', 'start', { waitMs: 0 });
    other();
    const waiting = acquireLock(d, 'a', 'start', { waitMs: 2_000 });
    setTimeout(release, 100);
    const second = await waiting;
    expect(lockOwner(d, 'a')?.operation).toBe('start');
    second();
    expect(lockOwner(d, 'a')).toBeUndefined();
  });

  it('withLockIfFree runs under a free lock, releasing it even on a throw, and skips a held one', async () => {
    const d = db();
    expect(await withLockIfFree(d, 'a', 'repair', () => lockOwner(d, 'a')?.operation)).toBe('repair');
    await expect(withLockIfFree(d, 'a', 'repair', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(lockOwner(d, 'a')).toBeUndefined();
    const release = await acquireLock(d, 'a', 'stop');
    let ran = false;
    expect(await withLockIfFree(d, 'a', 'repair', () => (ran = true))).toBeUndefined();
    expect(ran).toBe(false);
    release();
  });

  it('takes over a lock whose owner died', async () => {
    const d = db();
    const child = spawn('sleep', ['30']);
    const pid = child.pid!;
    const { processStartTime } = await import('../lib/proc.ts');
    d.prepare("INSERT INTO locks VALUES ('x', ?, ?, 'create', 'then')").run(pid, processStartTime(pid)!);
    await expect(acquireLock(d, 'x', 'start', { waitMs: 0 })).rejects.toThrow(/busy: create/);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const release = await acquireLock(d, 'x', 'start', { waitMs: 0 });
    expect(lockOwner(d, 'x')?.pid).toBe(process.pid);
    release();
  });

  it('applies migrations once, and a reopened database keeps its data', () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-db-'));
    dirs.push(dir);
    const first = openDb(join(dir, 's.db'));
    first.prepare("INSERT INTO locks VALUES ('k', 1, '1', 'op', 'now')").run();
    first.close();
    const again = openDb(join(dir, 's.db'));
    expect(again.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get()).toEqual({ n: MIGRATIONS.length });
    expect(again.prepare('SELECT name FROM locks').all()).toEqual([{ name: 'k' }]);
  });
});
