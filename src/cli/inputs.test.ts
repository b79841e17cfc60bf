import { describe, expect, it } from 'vitest';
import { downtimeLimitInput } from './inputs.ts';

describe('move --downtime-limit', () => {
  it('takes whole milliseconds from 1 to 60000; none given leaves the default to the engine', () => {
    expect(downtimeLimitInput(undefined)).toBeUndefined();
    expect([downtimeLimitInput('1'), downtimeLimitInput('300'), downtimeLimitInput('60000')]).toEqual([1, 300, 60_000]);
  });

  it('refuses anything else naming the option and the range', () => {
    for (const text of ['0', '60001', '-5', '2.5', '30ms', '', 'fast']) {
      expect(() => downtimeLimitInput(text), text).toThrow(`--downtime-limit: "${text}" is not a whole number of milliseconds from 1 to 60000`);
    }
  });
});
