import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtnodeError } from '../lib/errors.ts';
import { openDb } from '../store/db.ts';
import { OperationRepository } from '../store/operations.ts';
import { EventBus } from './events.ts';
import { OperationManager } from './operations.ts';

describe('operations: a cap per kind', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('refuses one more of a kind at the cap with BUSY, takes other kinds, and takes it again once one ends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-ops-'));
    dirs.push(dir);
    const db = openDb(join(dir, 'state.db'));
    const ops = new OperationManager(new EventBus(), new OperationRepository(db), { maxPerKind: 2 });
    const finish: Array<() => void> = [];
    const work = () => new Promise<void>((resolve) => finish.push(resolve));
    try {
      const first = ops.start('image-pull', 'a', work);
      ops.start('image-pull', 'b', work);
      let refused: unknown;
      try {
        ops.start('image-pull', 'c', work);
      } catch (e) {
        refused = e;
      }
      expect(refused).toBeInstanceOf(VirtnodeError);
      expect(refused).toMatchObject({ code: 'BUSY', message: '2 image-pull operations are running, as many as this daemon runs at once' });
      expect(ops.list({ limit: 10 }).map((o) => o.target).sort()).toEqual(['a', 'b']); // the refused one left no row
      expect(ops.start('launch', 'x', work).status).toBe('running');
      finish[0]!();
      expect((await ops.wait(first.id, 5_000)).status).toBe('succeeded');
      expect(ops.start('image-pull', 'c', work).status).toBe('running');
    } finally {
      for (const f of finish) f();
      await ops.shutdown();
      db.close();
    }
  });

  it("keeps a transfer's expected time left while the work gives one, and drops it when it gives none", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-ops-'));
    dirs.push(dir);
    const db = openDb(join(dir, 'state.db'));
    const ops = new OperationManager(new EventBus(), new OperationRepository(db));
    let finish = () => {};
    let ctx: Parameters<Parameters<OperationManager['start']>[2]>[0] | undefined;
    try {
      const op = ops.start('instance-move', 'web', (c) => ((ctx = c), new Promise<void>((resolve) => (finish = resolve))));
      ctx!.transfer(100, 1000, 2.5);
      expect(ops.get(op.id).progress).toMatchObject({ bytes: 100, totalBytes: 1000, percent: 10, expectedRemainingSeconds: 2.5 });
      ctx!.transfer(200, 1000);
      expect(ops.get(op.id).progress.expectedRemainingSeconds).toBeUndefined();
      finish();
      expect((await ops.wait(op.id, 5_000)).status).toBe('succeeded');
    } finally {
      finish();
      await ops.shutdown();
      db.close();
    }
  });

  it('shutdown aborts what runs and waits for it only so long: work that ignores the abort does not keep the daemon', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-ops-'));
    dirs.push(dir);
    const db = openDb(join(dir, 'state.db'));
    const ops = new OperationManager(new EventBus(), new OperationRepository(db));
    let heeded = false;
    ops.start('launch', 'polite', (ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => ((heeded = true), resolve()))));
    ops.start('launch', 'deaf', () => new Promise<void>(() => {}));
    const started = Date.now();
    await ops.shutdown(300);
    expect(heeded).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(5_000);
    db.close();
  });
});

