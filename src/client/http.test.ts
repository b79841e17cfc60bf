import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ApiClient, DaemonUnreachable } from './http.ts';

describe('the CLI talking to the daemon when a connection breaks after the request was sent', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-http-'));
  // A socket per test: Node keeps connections alive per socket path, and the next test's first request must not
  // go out on one of the last test's.
  let socket = '';
  let tests = 0;
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)));
    server = undefined;
    rmSync(socket, { force: true });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A daemon that drops the connection of the first `drops` requests without an answer, then answers 201. */
  async function daemon(drops: number): Promise<Array<{ method: string; key: string | undefined }>> {
    const seen: Array<{ method: string; key: string | undefined }> = [];
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => {
        seen.push({ method: req.method ?? '', key: req.headers['idempotency-key'] as string | undefined });
        if (seen.length <= drops) req.socket.destroy();
        else res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ attempts: seen.length }));
      });
    });
    socket = join(dir, `api-${++tests}.sock`);
    await new Promise<void>((resolve) => server!.listen(socket, resolve));
    return seen;
  }

  it('sends a change once more with the same idempotency key, and gets the answer', async () => {
    const seen = await daemon(1);
    const answer = await new ApiClient({ kind: 'unix', socket }).request('POST', '/networks', { name: 'lab' });
    expect(answer).toEqual({ status: 201, body: { attempts: 2 } });
    expect(seen).toHaveLength(2);
    expect(seen[0]!.key).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen[1]!.key).toBe(seen[0]!.key);
  });

  it('a GET carries no key; it is sent once more only: a second break is the error', async () => {
    const seen = await daemon(2);
    await expect(new ApiClient({ kind: 'unix', socket }).request('GET', '/instances')).rejects.toThrow(/cannot reach the virtnode daemon .*socket hang up/);
    expect(seen).toEqual([
      { method: 'GET', key: undefined },
      { method: 'GET', key: undefined },
    ]);
  });

  it('a daemon that went away after the request was sent is not taken for one that was never there', async () => {
    await daemon(1);
    server!.on('request', () => server!.close());
    const error = await new ApiClient({ kind: 'unix', socket }).request('POST', '/networks', {}).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(DaemonUnreachable);
    expect(String(error)).toMatch(/cannot reach the virtnode daemon .*socket hang up/);
  });

  it('no daemon at all: refused at once, not sent again (the caller may do the work itself)', async () => {
    const started = Date.now();
    await expect(new ApiClient({ kind: 'unix', socket: join(dir, 'none.sock') }).request('POST', '/networks', {})).rejects.toBeInstanceOf(DaemonUnreachable);
    expect(Date.now() - started).toBeLessThan(200);
  });
});
