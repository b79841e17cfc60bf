import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiHarness } from '../helpers/api.ts';
import { tempHome } from '../helpers/cli.ts';

describe('errors the router meets before any route have the error shape (found by the API fuzzer)', () => {
  const { home, cleanup } = tempHome('virtnode-router-');
  let api: ApiHarness;
  beforeAll(async () => {
    api = await ApiHarness.create(home);
  });
  afterAll(async () => {
    await api?.close();
    cleanup();
  });

  it.each([
    ['a path parameter longer than the router takes', `/instances/${'a'.repeat(300)}`, 414, 'a path parameter is longer than 253 characters'],
    ['a malformed %-escape', '/instances/%zz', 400, 'the URL path is not valid: a %-escape is malformed'],
    ['a truncated UTF-8 %-escape', '/images/a%E0%A4%A', 400, 'the URL path is not valid: a %-escape is malformed'],
  ])('%s', async (_what, url, status, message) => {
    const r = await api.app.inject({ method: 'GET', url });
    expect(r.statusCode).toBe(status);
    expect(r.json()).toEqual({ error: expect.objectContaining({ code: 'INVALID', message }) });
  });
});
