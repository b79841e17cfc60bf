import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { pino } from 'pino';
import { buildApp } from '../../src/daemon/app.ts';
import { createCore } from '../../src/daemon/core.ts';
import { DAEMON_PLUGINS } from '../../src/daemon/plugins.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { killQemusUnder, waitForText } from '../helpers/cli.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const BOOT_TIMEOUT_MS = 90_000;

/** Collects what a WebSocket receives, as text (serial) or raw bytes (VNC). */
function collect(ws: WebSocket): { text: () => string; bytes: () => Buffer; closed: Promise<{ code: number; reason: string }> } {
  const chunks: Buffer[] = [];
  ws.on('message', (data: Buffer) => chunks.push(data));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return { text: () => Buffer.concat(chunks).toString(), bytes: () => Buffer.concat(chunks), closed };
}

async function until<T>(check: () => T | undefined | false, what: string | (() => string), timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type Received = ReturnType<typeof collect>;

/** Opens a console WebSocket; what it receives is collected from the first frame on (it may come with the upgrade). */
function open(url: string): Promise<WebSocket & { rx: Received }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const rx = collect(ws);
    ws.once('open', () => resolve(Object.assign(ws, { rx })));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

describe('browser consoles: WebSocket bridges to the serial and VNC sockets of a real QEMU', () => {
  const home = mkdtempSync(join(tmpdir(), 'virtnode-web-consoles-'));
  const core = createCore(statePaths(home), pino({ level: 'silent' }));
  const service = core.instances;
  let app: FastifyInstance;
  let base: string;

  const ticket = async (name: string, kind: string) => {
    const r = await app.inject({ method: 'POST', url: `/instances/${name}/console-tickets`, payload: { kind } });
    return { status: r.statusCode, body: r.json() as { ticket: string; expiresAt: string; url: string; error?: { code: string; message: string } } };
  };

  beforeAll(async () => {
    await service.create({ name: 'con', memory: '128M', kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline });
    await service.start('con');
    await waitForText(join(home, 'instances', 'con', 'console.log'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS);
    // The daemon's app as it serves the UNIX socket, with the web UI plugin the daemon adds.
    app = await buildApp(core, { auth: 'none', logger: false, plugins: DAEMON_PLUGINS });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    base = `ws://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  });
  afterAll(async () => {
    await app?.close();
    killQemusUnder(home);
    rmSync(home, { recursive: true, force: true });
  });

  it('serial: scroll-back from the console log, then a shell that answers, for two viewers at once', async () => {
    const issued = await ticket('con', 'serial');
    expect(issued.status).toBe(201);
    expect(issued.body.url).toBe(`/instances/con/console/serial?ticket=${issued.body.ticket}`);
    const ws = await open(base + issued.body.url);
    const first = ws.rx;
    await until(() => first.text().includes(TEST_GUEST_READY_MARKER), 'the scroll-back');
    ws.send('echo answer-$((6*7))\n');
    await until(() => first.text().includes('answer-42'), 'the guest to answer');

    const second = (await open(base + (await ticket('con', 'serial')).body.url)).rx;
    await until(() => second.text().includes('answer-42'), 'the second viewer to get the history');
    ws.send('echo again-$((2*3))\n');
    await until(() => first.text().includes('again-6') && second.text().includes('again-6'), 'both viewers to see the answer');
    // Exactly once each: the live stream continues where the scroll-back ended.
    // (the terminal echoes the typed `again-$((2*3))`; only the answer reads `again-6`)
    expect(first.text().split('again-6').length - 1).toBe(1);
    expect(second.text().split('again-6').length - 1).toBe(1);
    expect(second.text().split(TEST_GUEST_READY_MARKER).length - 1).toBe(1);
    // busybox asks the terminal where the cursor is (ESC [6n) after its prompt; xterm.js answers it.
    await until(() => /test-guest# (\x1b\[6n)?$/.test(first.text()), () => `the next prompt (got ${JSON.stringify(first.text().slice(-60))})`);
    ws.close();
  });

  it('a ticket is single-use and bound to its console', async () => {
    const issued = await ticket('con', 'serial');
    (await open(base + issued.body.url)).close();
    await expect(open(base + issued.body.url)).rejects.toThrow('HTTP 403');
    const vnc = await ticket('con', 'vnc');
    await expect(open(`${base}/instances/con/console/serial?ticket=${vnc.body.ticket}`)).rejects.toThrow('HTTP 403');
    await expect(open(`${base}/instances/con/console/vnc`)).rejects.toThrow('HTTP 403');
    expect((await ticket('con', 'audio')).status).toBe(400);
    expect((await ticket('nope', 'vnc')).status).toBe(404);
    expect((await ticket('..%2F..%2Fetc', 'vnc')).status).toBe(400);
  });

  it('VNC: binary RFB frames from QEMU, two shared viewers at once', async () => {
    const handshake = async () => {
      const ws = await open(base + (await ticket('con', 'vnc')).body.url);
      const rx = ws.rx;
      await until(() => rx.bytes().length >= 12, 'the RFB version');
      expect(rx.bytes().subarray(0, 12).toString()).toBe('RFB 003.008\n');
      ws.send(Buffer.from('RFB 003.008\n'));
      await until(() => rx.bytes().length >= 14, 'the security types');
      const types = [...rx.bytes().subarray(13, 13 + rx.bytes()[12]!)];
      expect(types).toContain(1); // None: the UNIX socket is the protection, behind a console ticket
      ws.send(Buffer.from([1]));
      await until(() => rx.bytes().length >= 12 + 1 + types.length + 4, 'the security result');
      ws.send(Buffer.from([1])); // ClientInit: shared
      const serverInitAt = 12 + 1 + types.length + 4;
      await until(() => rx.bytes().length >= serverInitAt + 24, 'ServerInit');
      const init = rx.bytes().subarray(serverInitAt);
      return { ws, rx, width: init.readUInt16BE(0), height: init.readUInt16BE(2) };
    };
    const a = await handshake();
    const b = await handshake();
    expect(a.width).toBeGreaterThanOrEqual(640);
    expect(b.height).toBe(a.height);
    // Both sessions stay open: a second viewer does not push the first one out.
    await new Promise((r) => setTimeout(r, 300));
    expect(a.ws.readyState).toBe(WebSocket.OPEN);
    expect(b.ws.readyState).toBe(WebSocket.OPEN);
    a.ws.close();
    b.ws.close();
  });

  it('stopping the instance closes its consoles; a stopped instance has none', async () => {
    const serial = (await open(base + (await ticket('con', 'serial')).body.url)).rx;
    const vnc = (await open(base + (await ticket('con', 'vnc')).body.url)).rx;
    await service.stop('con', { force: true });
    expect((await serial.closed).reason).toMatch(/no longer running/);
    expect((await vnc.closed).code).toBe(1011);
    const refused = await ticket('con', 'serial');
    expect(refused.status).toBe(409);
    expect(refused.body.error?.message).toMatch(/is stopped/);
    expect(existsSync(join(home, 'instances', 'con', 'console.log'))).toBe(true);
  });
});
