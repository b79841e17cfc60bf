import { describe, expect, it } from 'vitest';
import { job } from './operations.ts';
import { instancesPeerRoute } from './instances-cluster.ts';
import type { Caller } from './resource.ts';

describe('the instances route of the cluster API', () => {
  const calls: Array<{ op: string; input: unknown; caller: Caller | undefined }> = [];
  let ran = 0;
  const here = {
    get: async (input: unknown, caller?: Caller) => {
      calls.push({ op: 'get', input, caller });
      return { name: 'a1' };
    },
    stop: async (input: unknown, caller?: Caller) => {
      calls.push({ op: 'stop', input, caller });
      return job('stop', 'instances/a1', async () => {
        ran++;
        return { method: 'forced' };
      });
    },
  };
  // Only the handlers these cases reach are given.
  const route = instancesPeerRoute(() => here as never);

  it('passes a plain request on as a remote caller, and runs long work to its end', async () => {
    expect(await route.handle({ op: 'get', input: { name: 'a1' } }, { host: 'h1' })).toEqual({ name: 'a1' });
    expect(calls.at(-1)).toEqual({ op: 'get', input: { name: 'a1' }, caller: { remote: true } });
    expect(await route.handle({ op: 'stop', input: { name: 'a1', force: true } }, { host: 'h1' })).toEqual({ method: 'forced' });
    expect(ran).toBe(1);
  });

  it('with validateOnly checks long work without doing it', async () => {
    expect(await route.handle({ op: 'stop', input: { name: 'a1' }, validateOnly: true }, { host: 'h1' })).toEqual({});
    expect(ran).toBe(1);
  });

  it('refuses what is not an instance request', async () => {
    for (const body of [{ op: 'toString', input: {} }, { op: 'get' }, { op: 'get', input: null }, {}]) {
      await expect(route.handle(body, { host: 'h1' })).rejects.toThrow('op: not an instance request');
    }
  });
});
