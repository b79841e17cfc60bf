import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireFileLock, takeOverStale } from './file-lock.ts';

const DEAD = JSON.stringify({ pid: 999_999_999, start: '0' });
const busy = (owner: { pid: number } | undefined) => new Error(`busy: ${owner?.pid ?? 'unknown'}`);

describe('file locks', () => {
  const dirs: string[] = [];
  const scratch = () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-file-lock-'));
    dirs.push(dir);
    return join(dir, 'x.lock');
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('is held by one owner at a time, names it when busy, and is gone once released', async () => {
    const lock = scratch();
    const release = await acquireFileLock(lock, { waitMs: 0, busy });
    expect(JSON.parse(readFileSync(lock, 'utf8'))).toMatchObject({ pid: process.pid });
    await expect(acquireFileLock(lock, { waitMs: 30, busy })).rejects.toThrow(`busy: ${process.pid}`);
    await release();
    expect(existsSync(lock)).toBe(false);
  });

  it("takes over a dead owner's lock, and an unreadable one only once it is old", async () => {
    const lock = scratch();
    writeFileSync(lock, DEAD);
    await (await acquireFileLock(lock, { waitMs: 0, busy }))();
    writeFileSync(lock, ''); // a writer between create and write: not stale yet
    await expect(acquireFileLock(lock, { waitMs: 0, busy })).rejects.toThrow('busy: unknown');
    const old = new Date(Date.now() - 10_000);
    utimesSync(lock, old, old);
    await (await acquireFileLock(lock, { waitMs: 0, busy }))();
  });

  it('a takeover never removes a lock that changed since it was seen, nor runs while another takeover does', async () => {
    const lock = scratch();
    // Another process took the stale lock over and holds a fresh one now.
    writeFileSync(lock, JSON.stringify({ pid: process.pid, start: 'fresh' }));
    await takeOverStale(lock, DEAD);
    expect(existsSync(lock)).toBe(true);
    // Another takeover is under way (its guard is fresh): leave it alone.
    writeFileSync(lock, DEAD);
    writeFileSync(`${lock}.takeover`, '');
    await takeOverStale(lock, DEAD);
    expect(readFileSync(lock, 'utf8')).toBe(DEAD);
    // A guard left by a crash is cleared, and the next takeover goes ahead.
    const old = new Date(Date.now() - 10_000);
    utimesSync(`${lock}.takeover`, old, old);
    await takeOverStale(lock, DEAD);
    await takeOverStale(lock, DEAD);
    expect(existsSync(lock)).toBe(false);
    expect(existsSync(`${lock}.takeover`)).toBe(false);
  });

  it('many contenders on a stale lock: one holder at a time, none lost', async () => {
    const lock = scratch();
    writeFileSync(lock, DEAD);
    let holders = 0;
    let most = 0;
    let done = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const release = await acquireFileLock(lock, { waitMs: 20_000, busy });
        holders++;
        most = Math.max(most, holders);
        await new Promise((r) => setTimeout(r, 5));
        holders--;
        done++;
        await release();
      }),
    );
    expect({ most, done }).toEqual({ most: 1, done: 20 });
  });
});
