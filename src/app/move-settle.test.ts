import { describe, expect, it } from 'vitest';
import { VirtnodeError } from '../lib/errors.ts';
import { type MoveStatus, resumedAfterAll } from './move-settle.ts';

/** A target whose answers to `status` are `answers` in turn (an Error: no answer), then the last one again. */
function target(...answers: Array<MoveStatus | Error>) {
  let asked = 0;
  return {
    ask: () => {
      const a = answers[Math.min(asked++, answers.length - 1)]!;
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
    },
    asked: () => asked,
  };
}

describe('resumedAfterAll (the source whose resume step got no answer)', () => {
  const lost = new VirtnodeError('TIMEOUT', 'the resume step got no answer');
  const resumed = { pid: 42, resumedAt: 1_000 };

  it('asks until the target says; the guest runs there: the move goes on with its answer', async () => {
    const t = target(new Error('connection refused'), { state: 'resuming' }, { state: 'running', resumed });
    await expect(resumedAfterAll(lost, t.ask, 10_000, 1)).resolves.toEqual(resumed);
    expect(t.asked()).toBe(3);
  });

  it('the target says it never ran the guest (prepared, or nothing of the move): the original failure, for the rollback', async () => {
    await expect(resumedAfterAll(lost, target({ state: 'prepared' }).ask, 10_000, 1)).rejects.toBe(lost);
    await expect(resumedAfterAll(lost, target(new Error('reset'), { state: 'unknown' }).ask, 10_000, 1)).rejects.toBe(lost);
  });

  it('the target never answers within the wait: a timeout saying the guest stays paused here (not the failure the rollback undoes)', async () => {
    const t = target(new Error('connection refused'));
    const e = await resumedAfterAll(lost, t.ask, 30, 5).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(VirtnodeError);
    expect((e as VirtnodeError).message).toBe('the target did not say whether the guest runs there (connection refused); the guest stays paused on this host until it does');
    expect(t.asked()).toBeGreaterThan(1);
  });
});
