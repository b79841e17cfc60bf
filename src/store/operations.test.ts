import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { OperationView } from '../api/schemas.ts';
import { selfIdentity } from '../lib/proc.ts';
import { openDb } from './db.ts';
import { OperationRepository } from './operations.ts';

describe('operation repository', () => {
  const dirs: string[] = [];
  const repo = () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-ops-'));
    dirs.push(dir);
    return new OperationRepository(openDb(join(dir, 'state.db')));
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const view = (n: number, at: Date): OperationView => ({
    id: `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`,
    kind: 'stop',
    target: `instances/vm-${n}`,
    status: 'running',
    progress: { entries: [] },
    createdAt: at.toISOString(),
  });

  it('keeps who started an operation, and nothing for one whose starter is unknown', () => {
    const r = repo();
    const a = { ...view(1, new Date()), startedBy: 'token:browser' };
    const b = view(2, new Date());
    r.insert(a, selfIdentity());
    r.insert(b, selfIdentity());
    r.finish({ ...a, status: 'succeeded', finishedAt: new Date().toISOString() });
    expect(r.get(a.id)?.startedBy).toBe('token:browser');
    expect(r.list({ limit: 10 }).find((o) => o.id === a.id)?.startedBy).toBe('token:browser');
    expect(r.get(b.id)).not.toHaveProperty('startedBy');
  });

  it('keeps progress, result and error as written, and lists newest first with a status filter', () => {
    const r = repo();
    const a = view(1, new Date(Date.now() - 2000));
    const b = view(2, new Date(Date.now() - 1000));
    r.insert(a, selfIdentity());
    r.insert(b, selfIdentity());
    a.progress = { phase: 'image', detail: 'resolved', entries: [{ phase: 'image', detail: 'resolved', elapsedMs: 5 }] };
    r.saveProgress(a.id, a.progress);
    expect(r.get(a.id)?.progress).toEqual(a.progress);
    r.finish({ ...a, status: 'succeeded', result: { method: 'acpi', nested: [1, null] }, finishedAt: new Date().toISOString() });
    r.finish({ ...b, status: 'failed', error: { code: 'TIMEOUT', message: 'slow', hint: 'wait' }, finishedAt: new Date().toISOString() });
    expect(r.get(a.id)).toMatchObject({ status: 'succeeded', result: { method: 'acpi', nested: [1, null] }, progress: { phase: 'image' } });
    expect(r.get(a.id)).not.toHaveProperty('error');
    expect(r.get(b.id)).toMatchObject({ status: 'failed', error: { code: 'TIMEOUT', message: 'slow', hint: 'wait' } });
    expect(r.list({ limit: 10 }).map((o) => o.id)).toEqual([b.id, a.id]);
    expect(r.list({ limit: 1 }).map((o) => o.id)).toEqual([b.id]);
    expect(r.list({ limit: 10, status: 'succeeded' }).map((o) => o.id)).toEqual([a.id]);
    expect(r.running()).toEqual([]);
    expect(r.get('00000000-0000-0000-0000-999999999999')).toBeUndefined();
  });

  it('prunes finished operations beyond the newest N and older than the age limit, never running ones', () => {
    const r = repo();
    const now = Date.now();
    for (let n = 0; n < 12; n++) {
      const v = view(n, new Date(now - (12 - n) * 1000));
      r.insert(v, selfIdentity());
      if (n !== 0) r.finish({ ...v, status: 'succeeded', finishedAt: new Date(now - (12 - n) * 1000 + 500).toISOString() });
    }
    expect(r.prune(8, new Date(now - 100 * 60_000).toISOString())).toBe(3); // 11 finished, keep the newest 8
    expect(r.list({ limit: 100 })).toHaveLength(9);
    expect(r.running().map((x) => x.view.id)).toEqual([view(0, new Date()).id]); // the oldest, but running
    expect(r.prune(100, new Date(now - 4_000).toISOString())).toBe(4); // finished before the cut-off
    expect(r.list({ limit: 100, status: 'succeeded' }).map((o) => o.id)).toEqual([view(11, new Date()).id, view(10, new Date()).id, view(9, new Date()).id, view(8, new Date()).id]);
  });
});
