import { describe, expect, it } from 'vitest';
import { pausedByMove } from './move-arrivals.ts';

describe('adopting an arrived guest', () => {
  it('resumes a QEMU the move left paused (its incoming migration done, no cont yet), nothing else', () => {
    expect(pausedByMove('paused')).toBe(true);
    expect(pausedByMove('prelaunch')).toBe(true);
    for (const s of ['running', 'inmigrate', 'postmigrate', 'finish-migrate', 'internal-error', 'shutdown']) expect([s, pausedByMove(s)]).toEqual([s, false]);
  });
});
