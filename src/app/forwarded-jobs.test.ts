import { describe, expect, it } from 'vitest';
import { forwardedJobsPeerRoute, runFollowed } from './forwarded-jobs.ts';
import { job } from './operations.ts';

describe('forwarded jobs: followed and cancelled by the host that asked', () => {
  const route = forwardedJobsPeerRoute();
  const ask = (body: unknown) => route.handle(body, { host: 'h1' });

  it('records each phase and transfer under the asker id, and a cancel aborts the work', async () => {
    const id = crypto.randomUUID();
    let release: () => void = () => undefined;
    const reached = new Promise<void>((r) => (release = r));
    const running = runFollowed(
      job('launch', 'instances/a1', async (ctx) => {
        ctx.phase('disk', 'made');
        ctx.transfer(10, 100);
        release();
        await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
      }),
      id,
    );
    await reached;
    expect(await ask({ id })).toEqual({ phases: [{ phase: 'disk', detail: 'made' }], bytes: 10, totalBytes: 100 });
    await ask({ id, cancel: true });
    await expect(running).rejects.toThrow('aborted');
  });

  it('a cancel that comes before its work is honoured when the work arrives', async () => {
    const id = crypto.randomUUID();
    expect(await ask({ id, cancel: true })).toEqual({ phases: [], bytes: 0 });
    let ran = false;
    await expect(runFollowed(job('launch', undefined, async () => void (ran = true)), id)).rejects.toThrow();
    expect(ran).toBe(false);
  });

  it('refuses what is not an operation id', async () => {
    for (const body of [{}, { id: 5 }, { id: '../x' }, { id: 'a' }]) await expect(ask(body)).rejects.toThrow('id: not an operation id');
    await expect(runFollowed(job('launch', undefined, async () => 1), 'x y')).rejects.toThrow('follow:');
  });
});
