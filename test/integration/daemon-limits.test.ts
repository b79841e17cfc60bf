/**
 * What one client can hold in the daemon: connections beyond the cap are closed at once, slow senders are timed
 * out (the server's limits), and an events client that stops reading is dropped instead of buffered without end.
 * The daemon's app on a real UNIX socket, with small limits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SERVER_LIMITS, buildApp } from '../../src/daemon/app.ts';
import { createCore, type DaemonCore } from '../../src/daemon/core.ts';
import { MAX_EVENTS_BACKLOG_BYTES } from '../../src/daemon/routes/events.ts';
import { statePaths } from '../../src/lib/paths.ts';

const MAX_CONNECTIONS = 3;

describe('daemon limits on what a client holds', () => {
  const home = mkdtempSync(join(tmpdir(), 'virtnode-limits-'));
  const socketPath = join(home, 'virtnode.sock');
  let core: DaemonCore;
  let app: FastifyInstance;

  const getHost = () =>
    new Promise<number>((resolve, reject) => {
      const req = request({ socketPath, path: '/host', method: 'GET', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    core = createCore(statePaths(home), pino({ level: 'silent' }));
    app = await buildApp(core, { auth: 'none', logger: false, limits: { maxConnections: MAX_CONNECTIONS } });
    await app.listen({ path: socketPath });
  });
  afterAll(async () => {
    await app?.close();
    core?.db.close();
    rmSync(home, { recursive: true, force: true });
  });

  it('has timeouts for slow senders by default: headers in 15 s, the whole request in 60 s', () => {
    expect(SERVER_LIMITS).toMatchObject({ headersTimeoutMs: 15_000, requestTimeoutMs: 60_000 });
    expect(app.server.headersTimeout).toBe(15_000);
    expect(app.server.requestTimeout).toBe(60_000);
  });

  it('closes connections beyond the cap at once, and takes new ones when others leave', async () => {
    const held: Socket[] = [];
    try {
      for (let i = 0; i < MAX_CONNECTIONS; i++) {
        const s = connect(socketPath);
        await new Promise((resolve) => s.once('connect', resolve));
        held.push(s);
      }
      await expect(getHost()).rejects.toThrow(/socket hang up|ECONNRESET|EPIPE/);
      held.pop()!.destroy();
      await new Promise((r) => setTimeout(r, 100));
      expect(await getHost()).toBe(200);
    } finally {
      for (const s of held) s.destroy();
    }
  });

  it('drops an events client that stops reading instead of buffering for it, and unsubscribes it', async () => {
    const ws = new WebSocket(`ws+unix://${socketPath}:/events`);
    await new Promise((resolve, reject) => {
      ws.once('message', resolve); // the hello
      ws.once('error', reject);
    });
    const before = core.events.subscribers();
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    (ws as unknown as { _socket: Socket })._socket.pause(); // a client that no longer reads
    const reason = 'x'.repeat(64 * 1024);
    // Far more than the backlog allowed plus what the kernel's socket buffers hold.
    const events = Math.ceil((MAX_EVENTS_BACKLOG_BYTES * 8) / reason.length);
    for (let i = 0; i < events; i++) {
      core.events.publish({ type: 'instance', name: 'flood', state: 'running', previous: 'starting', reason, at: new Date().toISOString() });
      if (i % 16 === 0) await new Promise((r) => setImmediate(r)); // let the server try to write
    }
    (ws as unknown as { _socket: Socket })._socket.resume();
    expect(await closed).toBe(1008);
    const deadline = Date.now() + 5_000; // the server's side of the close handshake ends a moment later
    while (core.events.subscribers() !== before - 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(core.events.subscribers()).toBe(before - 1);
  });
});
