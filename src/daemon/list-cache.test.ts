import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDb } from '../store/db.ts';
import { EventBus } from './events.ts';
import { ResponseCache } from './list-cache.ts';

describe('response cache of the instance list', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const setup = (maxAgeMs = 60_000) => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-cache-'));
    dirs.push(dir);
    const db = openDb(join(dir, 'state.db'));
    const other = openDb(join(dir, 'state.db')); // another process's connection
    const events = new EventBus();
    let builds = 0;
    const build = async () => {
      builds++;
      await new Promise((r) => setTimeout(r, 20));
      return Buffer.from(String(builds));
    };
    return { db, other, events, cache: new ResponseCache(db, events, { maxAgeMs }), build, builds: () => builds };
  };
  const write = (db: ReturnType<typeof openDb>) => db.prepare("INSERT INTO api_tokens (name, sha256, created_at) VALUES (?, ?, 'now')").run(`t${Math.random()}`, `${Math.random()}`);

  it('builds once for concurrent requests and serves that until something changes', async () => {
    const { cache, build, builds } = setup();
    const bodies = await Promise.all(Array.from({ length: 20 }, () => cache.get(build)));
    expect(new Set(bodies.map(String))).toEqual(new Set(['1']));
    expect(String(await cache.get(build))).toBe('1');
    expect(builds()).toBe(1);
  });

  it('rebuilds after a write on its own connection, on another connection, and after an event', async () => {
    const { db, other, events, cache, build } = setup();
    expect(String(await cache.get(build))).toBe('1');
    write(db);
    expect(String(await cache.get(build))).toBe('2');
    write(other);
    expect(String(await cache.get(build))).toBe('3');
    events.publish({ type: 'instance', name: 'a', state: 'running', previous: 'stopped', at: new Date().toISOString() });
    expect(String(await cache.get(build))).toBe('4');
    expect(String(await cache.get(build))).toBe('4');
  });

  it('a change during a build makes the next request build again, and the cache expires after maxAgeMs', async () => {
    const { db, cache, build } = setup(100);
    const first = cache.get(build);
    write(db); // while the first build runs
    expect(String(await first)).toBe('1');
    expect(String(await cache.get(build))).toBe('2');
    expect(String(await cache.get(build))).toBe('2');
    await new Promise((r) => setTimeout(r, 120));
    expect(String(await cache.get(build))).toBe('3');
  });
});
