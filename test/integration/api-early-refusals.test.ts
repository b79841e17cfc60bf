import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiHarness } from '../helpers/api.ts';
import { tempHome } from '../helpers/cli.ts';

describe('bad requests refused before any work, in the error shape (found by the API fuzzer)', () => {
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

  it('a body that is not declared JSON is refused (415), also where the route takes no body', async () => {
    for (const [url, payload] of [['/events/tickets', '{}'], ['/instances', '{"name": "a"}']] as const) {
      const r = await api.app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'text/plain' } });
      expect(r.statusCode).toBe(415);
      expect(r.json()).toEqual({ error: { code: 'INVALID', message: 'the request body must be JSON', hint: 'send it with content-type: application/json' } });
    }
    expect((await api.app.inject({ method: 'POST', url: '/events/tickets' })).statusCode).toBe(201);
    expect((await api.app.inject({ method: 'POST', url: '/events/tickets', payload: {} })).statusCode).toBe(201);
  });

  it('an image import of a missing or empty file or a name it cannot derive is refused at once, not as a failed operation', async () => {
    const missing = await api.call('POST', '/images/import', { file: '/no/such/image.qcow2' });
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toBe('FILE: /no/such/image.qcow2 does not exist or is not a readable file');
    const unnamed = await api.call('POST', '/images/import', { file: '/' });
    expect(unnamed.status).toBe(400);
    expect(unnamed.body.error.message).toMatch(/^--name: cannot make an image name from/);
    // Found by the fuzzer: a file that says it is empty (as every file under /proc does) is no image.
    const empty = await api.call('POST', '/images/import', { file: '/proc/self/environ', name: 'env' });
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toBe('FILE: /proc/self/environ is empty');
    expect((await api.call('GET', '/operations')).body).toEqual([]);
  });
});
