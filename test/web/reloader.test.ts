import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { reloader, type RetryPolicy } from '../../web/src/lib/reloader.ts';

/** A load whose answers the test gives, in any order it likes. */
function scriptedLoad() {
  const pending: Array<{ resolve: (v: string) => void; reject: (e: unknown) => void }> = [];
  const load = vi.fn(
    () =>
      new Promise<string>((resolve, reject) => {
        pending.push({ resolve, reject });
      }),
  );
  return { load, pending };
}

const policy: RetryPolicy = { retryable: (e) => !(e instanceof RangeError), firstPauseMs: 1_000, maxPauseMs: 4_000 };

describe('the web UI reloading what a page shows', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('runs one load at a time: asks made during a load become one more load after it, so the newest answer is shown last', async () => {
    const { load, pending } = scriptedLoad();
    const shown: string[] = [];
    const r = reloader(load, { loaded: (v) => shown.push(v), failed: () => {} }, policy);
    const first = r.reload();
    const second = r.reload();
    const third = r.reload();
    expect(load).toHaveBeenCalledTimes(1);
    pending[0]!.resolve('old');
    await vi.advanceTimersByTimeAsync(0);
    expect(load).toHaveBeenCalledTimes(2);
    pending[1]!.resolve('new');
    await Promise.all([first, second, third]);
    expect(shown).toEqual(['old', 'new']);
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('tries a load that failed on the way again, after pauses that double up to the most, and stops once one succeeds', async () => {
    const { load, pending } = scriptedLoad();
    const shown: string[] = [];
    const failures: unknown[] = [];
    const r = reloader(load, { loaded: (v) => shown.push(v), failed: (e) => failures.push(e) }, policy);
    void r.reload();
    const pauses: number[] = [];
    for (let i = 0; i < 4; i++) {
      pending[i]!.reject(new TypeError('Failed to fetch'));
      await vi.advanceTimersByTimeAsync(0);
      const before = load.mock.calls.length;
      let waited = 0;
      while (load.mock.calls.length === before && waited < 10_000) {
        await vi.advanceTimersByTimeAsync(100);
        waited += 100;
      }
      pauses.push(waited);
    }
    expect(pauses).toEqual([1_000, 2_000, 4_000, 4_000]);
    expect(failures).toHaveLength(4);
    pending[4]!.resolve('back');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(shown).toEqual(['back']);
    expect(load).toHaveBeenCalledTimes(5);
  });

  it('does not try a final failure again (a 4xx); a later ask loads again', async () => {
    const { load, pending } = scriptedLoad();
    const failures: unknown[] = [];
    const r = reloader(load, { loaded: () => {}, failed: (e) => failures.push(e) }, policy);
    void r.reload();
    pending[0]!.reject(new RangeError('not found'));
    await vi.advanceTimersByTimeAsync(60_000);
    expect(load).toHaveBeenCalledTimes(1);
    expect(failures).toHaveLength(1);
    void r.reload();
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('after stop: no retry, no callback, no load', async () => {
    const { load, pending } = scriptedLoad();
    const events: string[] = [];
    const r = reloader(load, { loaded: () => events.push('loaded'), failed: () => events.push('failed') }, policy);
    void r.reload();
    pending[0]!.reject(new TypeError('Failed to fetch'));
    await vi.advanceTimersByTimeAsync(0);
    expect(events).toEqual(['failed']);
    r.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    await r.reload();
    expect(load).toHaveBeenCalledTimes(1);

    const late = reloader(load, { loaded: () => events.push('late loaded'), failed: () => {} }, policy);
    void late.reload();
    late.stop();
    pending[1]!.resolve('too late');
    await vi.advanceTimersByTimeAsync(0);
    expect(events).toEqual(['failed']);
  });
});
