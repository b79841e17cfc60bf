import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorHandler } from './errors.ts';
import { replayRepeatedChanges } from './idempotency.ts';

/** One POST over a real connection; `abortAfterMs` drops the connection before the answer, as Chromium does. */
function post(port: number, path: string, key: string | undefined, abortAfterMs?: number): Promise<{ status: number; body: string; replayed: boolean } | 'aborted'> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', headers: key === undefined ? {} : { 'idempotency-key': key } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, replayed: res.headers['idempotent-replayed'] === 'true' }));
    });
    req.on('error', (e) => (abortAfterMs === undefined ? reject(e) : resolve('aborted')));
    req.end();
    if (abortAfterMs !== undefined) setTimeout(() => req.destroy(), abortAfterMs);
  });
}

describe('changes sent again with the same Idempotency-Key', () => {
  let app: FastifyInstance;
  let port: number;
  let done = 0;
  beforeAll(async () => {
    app = Fastify();
    app.setErrorHandler(errorHandler(1024));
    app.decorateRequest('authenticatedAs', undefined);
    app.addHook('onRequest', async (request) => {
      request.authenticatedAs = String(request.headers['x-client'] ?? 'a');
    });
    replayRepeatedChanges(app);
    // A change that takes a while and answers with how many times it was done.
    app.post('/things', async (_request, reply) => {
      await new Promise((r) => setTimeout(r, 300));
      done += 1;
      return reply.code(201).send({ done });
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
  });
  afterAll(() => app?.close());

  it('a repeat gets the first answer, marked as replayed; without a key the change is done again', async () => {
    const first = await post(port, '/things', 'key-aaaaaaaa');
    const again = await post(port, '/things', 'key-aaaaaaaa');
    expect(first).toEqual({ status: 201, body: JSON.stringify({ done: done }), replayed: false });
    expect(again).toEqual({ status: 201, body: first === 'aborted' ? '' : first.body, replayed: true });
    const before = done;
    await post(port, '/things', undefined);
    await post(port, '/things', undefined);
    expect(done).toBe(before + 2);
  });

  it('after the client dropped the connection, the repeat waits for the answer it missed: the change is done once', async () => {
    const before = done;
    expect(await post(port, '/things', 'key-bbbbbbbb', 50)).toBe('aborted');
    const again = await post(port, '/things', 'key-bbbbbbbb');
    expect(again).toEqual({ status: 201, body: JSON.stringify({ done: before + 1 }), replayed: true });
    expect(done).toBe(before + 1);
  });

  it('a key is per client and per request: another path with it is refused, naming the header; a bad key is refused', async () => {
    const before = done;
    await post(port, '/things', 'key-cccccccc');
    const elsewhere = await post(port, '/things?x=1', 'key-cccccccc');
    expect(elsewhere).toMatchObject({ status: 409, replayed: false });
    expect(JSON.parse((elsewhere as { body: string }).body)).toEqual({
      error: { code: 'CONFLICT', message: 'idempotency-key: this key was sent with POST /things', field: 'idempotency-key', hint: 'send a new key with each change' },
    });
    const bad = await post(port, '/things', 'short');
    expect(bad).toMatchObject({ status: 400 });
    expect(JSON.parse((bad as { body: string }).body).error).toMatchObject({ code: 'INVALID', field: 'idempotency-key' });
    expect(done).toBe(before + 1);
  });

  it('another client with the same key has its own change done', async () => {
    const before = done;
    await post(port, '/things', 'key-dddddddd');
    const other = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/things', method: 'POST', headers: { 'idempotency-key': 'key-dddddddd', 'x-client': 'b' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    expect(other).toBe(201);
    expect(done).toBe(before + 2);
  });
});
