import { describe, expect, it } from 'vitest';
import { serialPasses } from './serial-passes.ts';

describe('serialPasses', () => {
  it('runs one pass at a time; requests during a pass give exactly one more; errors do not stop it', async () => {
    let active = 0;
    let most = 0;
    let runs = 0;
    const errors: unknown[] = [];
    let release: () => void = () => {};
    const passes = serialPasses(
      async () => {
        active += 1;
        most = Math.max(most, active);
        runs += 1;
        await new Promise<void>((r) => (release = r));
        active -= 1;
        if (runs === 1) throw new Error('first fails');
      },
      (e) => errors.push(e),
    );
    passes.request();
    passes.request();
    passes.request();
    release();
    await new Promise((r) => setTimeout(r, 10));
    expect(runs).toBe(2);
    release();
    await new Promise((r) => setTimeout(r, 10));
    expect([runs, most, errors.length]).toEqual([2, 1, 1]);
    passes.request();
    const stopping = passes.stop();
    release();
    await stopping;
    passes.request();
    expect(runs).toBe(3);
  });
});
