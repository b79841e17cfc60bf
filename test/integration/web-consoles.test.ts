import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
import { killQemusUnder, VIRTNODE_BIN, virtnode, waitForText } from '../helpers/cli.ts';
import { runIn } from '../helpers/cli-modes.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const BOOT_TIMEOUT_MS = 90_000;

/** Collects what a WebSocket receives, as text (serial) or raw bytes (VNC). */
function collect(ws: WebSocket): { text: () => string; bytes: () => Buffer; frames: () => string[]; closed: Promise<{ code: number; reason: string }> } {
  const chunks: Buffer[] = [];
  ws.on('message', (data: Buffer) => chunks.push(data));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return { text: () => Buffer.concat(chunks).toString(), bytes: () => Buffer.concat(chunks), frames: () => chunks.map((c) => c.toString()), closed };
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
function open(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket & { rx: Received }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { rejectUnauthorized: false, ...options });
    const rx = collect(ws);
    ws.once('open', () => resolve(Object.assign(ws, { rx })));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** `virtnode console NAME` as a process with piped stdin (no terminal), its output collected. */
function cliConsole(home: string, name: string, env: Record<string, string> = {}): { child: ChildProcessWithoutNullStreams; out: () => string; err: () => string; exited: Promise<number | null> } {
  const child = spawn(VIRTNODE_BIN, ['console', name], { env: { ...process.env, VIRTNODE_HOME: home, ...env } });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exited };
}

/** How often a string occurs. */
const count = (text: string, what: string) => text.split(what).length - 1;

describe('consoles: WebSocket bridges to the serial and VNC sockets of a real QEMU, shared by browsers and the CLI', () => {
  const home = mkdtempSync(join(tmpdir(), 'virtnode-web-consoles-'));
  const core = createCore(statePaths(home), pino({ level: 'silent' }));
  const service = core.instances;
  /** The daemon's two listeners over one core: TCP (TLS, bearer tokens; browsers use tickets) and the UNIX socket. */
  let app: FastifyInstance;
  let socketApp: FastifyInstance;
  let base: string;
  let port = 0;
  let token: string;
  const socketPath = join(home, 'virtnode.sock');
  const cert = join(home, 'cert.pem');
  const logRequests: string[] = [];

  const ticket = async (name: string, kind: string) => {
    const r = await app.inject({ method: 'POST', url: `/instances/${name}/console-tickets`, payload: { kind }, headers: { authorization: `Bearer ${token}` } });
    return { status: r.statusCode, body: r.json() as { ticket: string; expiresAt: string; url: string; error?: { code: string; message: string } } };
  };

  beforeAll(async () => {
    await service.create({ name: 'con', memory: '128M', kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline });
    await service.start('con');
    const key = join(home, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    token = core.tokens.create('consoles-test').token;
    // The daemon's apps, with the web UI plugin the daemon adds.
    app = await buildApp(core, { auth: 'token', https: { cert: readFileSync(cert), key: readFileSync(key) }, logger: false, plugins: DAEMON_PLUGINS });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    port = typeof address === 'object' && address !== null ? address.port : 0;
    base = `wss://127.0.0.1:${port}`;
    socketApp = await buildApp(core, { auth: 'none', logger: false, plugins: DAEMON_PLUGINS });
    socketApp.addHook('onRequest', async (request) => void logRequests.push(`${request.method} ${request.url}`));
    await socketApp.listen({ path: socketPath });
    await waitForText(join(home, 'instances', 'con', 'console.log'), TEST_GUEST_READY_MARKER, BOOT_TIMEOUT_MS);
  });
  afterAll(async () => {
    await app?.close();
    await socketApp?.close();
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
    expect(first.frames()[0]).toContain(TEST_GUEST_READY_MARKER); // the first frame is the whole scroll-back
    ws.send('echo answer-$((6*7))\n');
    await until(() => first.text().includes('answer-42'), 'the guest to answer');

    const secondViewer = await open(base + (await ticket('con', 'serial')).body.url);
    const second = secondViewer.rx;
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
    secondViewer.close();
  });

  it('a ticket is single-use and bound to its console', async () => {
    const issued = await ticket('con', 'serial');
    (await open(base + issued.body.url)).close();
    await expect(open(base + issued.body.url)).rejects.toThrow('HTTP 403');
    const vnc = await ticket('con', 'vnc');
    await expect(open(`${base}/instances/con/console/serial?ticket=${vnc.body.ticket}`)).rejects.toThrow('HTTP 403');
    await expect(open(`${base}/instances/con/console/vnc`)).rejects.toThrow('HTTP 401'); // neither ticket nor token
    await expect(open(`${base}/instances/con/console/vnc`, { headers: { authorization: 'Bearer vn_wrong' } })).rejects.toThrow('HTTP 401');
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

  it('events: one route, /events, for the UNIX socket, a bearer token, or a single-use ticket (browsers)', async () => {
    const issued = await app.inject({ method: 'POST', url: '/events/tickets', headers: { authorization: `Bearer ${token}` } });
    expect(issued.statusCode).toBe(201);
    const { url } = issued.json() as { url: string };
    expect(url).toMatch(/^\/events\?ticket=[\w-]{43}$/);
    const viaTicket = await open(base + url);
    const viaToken = await open(`${base}/events`, { headers: { authorization: `Bearer ${token}` } });
    const viaSocket = await open(`ws+unix://${socketPath}:/events`);
    for (const ws of [viaTicket, viaToken, viaSocket]) {
      const messages = () => ws.rx.frames().map((m) => JSON.parse(m) as { type: string; instances?: Array<{ name: string; state: string }>; name?: string; state?: string });
      const hello = await until(() => messages().find((m) => m.type === 'hello'), 'the hello');
      expect(hello.instances).toEqual([expect.objectContaining({ name: 'con', state: 'running' })]);
      Object.assign(ws, { messages });
    }
    core.events.publish({ type: 'instance', name: 'con', state: 'paused', previous: 'running', at: new Date().toISOString() });
    for (const ws of [viaTicket, viaToken, viaSocket]) {
      const messages = (ws as unknown as { messages: () => Array<{ type: string; state?: string }> }).messages;
      await until(() => messages().find((m) => m.type === 'instance' && m.state === 'paused'), 'the published event');
      ws.close();
    }
    await expect(open(base + url)).rejects.toThrow('HTTP 403'); // spent
    await expect(open(`${base}/events`)).rejects.toThrow('HTTP 401');
    expect((await app.inject({ method: 'POST', url: '/events/tickets' })).statusCode).toBe(401); // tickets are for token holders
    // The old browser-only copy is gone.
    expect(app.hasRoute({ method: 'GET', url: '/ui/events' })).toBe(false);
    expect(app.hasRoute({ method: 'POST', url: '/ui/event-tickets' })).toBe(false);
  });

  it('`virtnode console` through the daemon socket shares the serial console with a browser: typed in the CLI, answered to both; Ctrl-] detaches', async () => {
    const browser = await open(base + (await ticket('con', 'serial')).body.url);
    await until(() => browser.rx.text().includes(TEST_GUEST_READY_MARKER), 'the browser scroll-back');
    const cli = cliConsole(home, 'con');
    try {
      await until(() => cli.err().includes('Connected to the console of con. Press Ctrl-] to detach.'), () => `the CLI to attach (stderr: ${cli.err()})`);
      expect(logRequests).toContain('GET /instances/con/console/serial?scrollback=0'); // through the daemon's hub
      cli.child.stdin.write('echo cli-$((6*7))\n');
      await until(() => cli.out().includes('cli-42\r\n') && browser.rx.text().includes('cli-42\r\n'), () => `both to see the answer (CLI: ${JSON.stringify(cli.out().slice(-200))})`);
      browser.send('echo web-$((2*4))\n');
      await until(() => cli.out().includes('web-8\r\n') && browser.rx.text().includes('web-8\r\n'), 'both to see the answer to the browser');
      // As on QEMU's socket: no scroll-back in the CLI, only what came after it attached, each byte once.
      expect(cli.out()).not.toContain(TEST_GUEST_READY_MARKER);
      expect(count(cli.out(), 'cli-42\r\n')).toBe(1);
      expect(count(browser.rx.text(), 'cli-42\r\n')).toBe(1);
      cli.child.stdin.write(Buffer.from([0x1d])); // Ctrl-] (stdin stays open: only the key detaches)
      let code: number | null | undefined;
      void cli.exited.then((c) => (code = c));
      await until(() => code !== undefined, () => `the CLI to exit after Ctrl-] (stderr: ${cli.err()}, stdout: ${JSON.stringify(cli.out().slice(-200))})`, 10_000);
      expect(code).toBe(0);
      expect(cli.err()).toContain('Detached from con.');
      // The browser keeps the console after the CLI left.
      browser.send('echo after-$((1+2))\n');
      await until(() => browser.rx.text().includes('after-3\r\n'), 'the browser to go on alone');
    } finally {
      cli.child.kill('SIGKILL');
      browser.close();
    }
  });

  it('`virtnode console` through the daemon on a terminal: raw keys reach the guest, Ctrl-] detaches, the terminal is restored', async () => {
    // util-linux `script` gives the CLI a pseudo-terminal; `stty -a` afterwards shows the mode it was left in.
    const child = spawn('script', ['-q', '-e', '-c', `${VIRTNODE_BIN} console con; stty -a`, '/dev/null'], { env: { ...process.env, VIRTNODE_HOME: home } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await until(() => out.includes('Press Ctrl-] to detach.'), () => `the CLI to attach (got ${JSON.stringify(out)})`);
      await new Promise((r) => setTimeout(r, 300)); // raw mode is set right after the banner
      child.stdin.write('echo tty-$((7*6))\r'); // Enter on a raw terminal is CR
      await until(() => /tty-42\r+\n/.test(out), () => `the guest to answer (got ${JSON.stringify(out.slice(-300))})`);
      child.stdin.write(Buffer.from([0x1d]));
      await until(() => /Detached from con\.[\s\S]*speed \d+ baud/.test(out), () => `the CLI to detach and stty to report (got ${JSON.stringify(out.slice(-600))})`);
      expect(await exited).toBe(0);
      const modes = out.slice(out.lastIndexOf('speed '));
      expect(modes).toMatch(/(^|\s)icanon(\s|$)/); // cooked again, not -icanon
      expect(modes).toMatch(/(^|\s)echo(\s|$)/);
      expect(logRequests).toContain('GET /instances/con/console/serial?scrollback=0');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('`virtnode console` over --remote with a bearer token, piped input; the same lines as locally', async () => {
    const browser = await open(base + (await ticket('con', 'serial')).body.url);
    try {
      const remote = await virtnode(join(home, 'elsewhere'), ['--remote', `https://localhost:${port}`, 'console', 'con'], {
        env: { VIRTNODE_TOKEN: token, VIRTNODE_CA: cert },
        input: 'echo remote-$((3*3))\n',
      });
      expect(remote.code, remote.stderr).toBe(0);
      expect(remote.stdout).toContain('remote-9\r\n');
      expect(remote.stdout).not.toContain(TEST_GUEST_READY_MARKER);
      await until(() => browser.rx.text().includes('remote-9\r\n'), 'the browser to see the remote answer');
      const wrong = await virtnode(join(home, 'elsewhere'), ['--remote', `https://localhost:${port}`, 'console', 'con'], { env: { VIRTNODE_TOKEN: 'vn_wrong', VIRTNODE_CA: cert } });
      expect(wrong.code).toBe(13);
      expect(wrong.stderr).toContain('the bearer token is not valid');
    } finally {
      browser.close();
    }
    // Without a daemon (nobody holds QEMU's socket now) the console is QEMU's socket itself: the same lines.
    const local = await runIn('local', home, ['console', 'con'], {});
    const daemon = await runIn('daemon', home, ['console', 'con'], {});
    for (const r of [local, daemon]) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe('Connected to the console of con. Press Ctrl-] to detach.\n\nDetached from con.\n');
    }
    const typed = async (mode: 'local' | 'daemon', word: string) => {
      const r = await virtnode(home, ['console', 'con'], { env: mode === 'local' ? { VIRTNODE_NO_DAEMON: '1' } : {}, input: `echo ${word}-$((4+4))\n` });
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.replaceAll(word, 'WORD');
    };
    const viaDaemon = await typed('daemon', 'viad');
    expect(viaDaemon).toContain('WORD-8\r\n');
    // (no browser watches now: locally the console would otherwise wait for QEMU's one serial connection)
    expect(viaDaemon).toBe(await typed('local', 'vial'));
  });

  it('`virtnode logs` and `logs -f` print the same bytes through the daemon as locally', async () => {
    const before = logRequests.length;
    const daemon = await runIn('daemon', home, ['logs', 'con']);
    const local = await runIn('local', home, ['logs', 'con']);
    expect(daemon.code).toBe(0);
    expect(daemon).toEqual({ ...local, args: daemon.args });
    expect(daemon.stdout).toContain(TEST_GUEST_READY_MARKER);
    expect(logRequests.slice(before)).toContain('GET /instances/con/console-log');

    const follow = (mode: 'local' | 'daemon') => {
      const child = spawn(VIRTNODE_BIN, ['logs', '-f', '--all', 'con'], { env: { ...process.env, VIRTNODE_HOME: home, ...(mode === 'local' ? { VIRTNODE_NO_DAEMON: '1' } : {}) } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      return { child, out: () => out, exited };
    };
    const followers = [follow('daemon'), follow('local')];
    try {
      await until(() => followers.every((f) => f.out().includes(TEST_GUEST_READY_MARKER)), 'both followers to print the log');
      const browser = await open(base + (await ticket('con', 'serial')).body.url);
      browser.send('echo followed-$((5*5))\n');
      await until(() => followers.every((f) => f.out().includes('followed-25\r\n')), 'both followers to print the new output');
      await new Promise((r) => setTimeout(r, 1_500)); // the prompt after it, too
      browser.close();
      const log = readFileSync(join(home, 'instances', 'con', 'console.log'), 'utf8');
      await until(() => followers.every((f) => f.out() === log), 'both followers to catch up with the log');
      for (const f of followers) f.child.kill('SIGINT');
      expect(await Promise.all(followers.map((f) => f.exited))).toEqual([0, 0]);
      expect(followers[0]!.out()).toBe(followers[1]!.out());
      expect(logRequests.slice(before)).toContain('GET /instances/con/console-log?follow=true&all=true');
    } finally {
      for (const f of followers) f.child.kill('SIGKILL');
    }
    const missing = [await runIn('daemon', home, ['logs', 'nope']), await runIn('local', home, ['logs', 'nope'])];
    expect(missing[0]!.code).toBe(3);
    expect(missing[0]).toEqual({ ...missing[1], args: missing[0]!.args });
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
    // The CLI says the same either way.
    const viaDaemon = await runIn('daemon', home, ['console', 'con']);
    const local = await runIn('local', home, ['console', 'con']);
    expect(viaDaemon.code).toBe(5);
    expect(viaDaemon).toEqual({ ...local, args: viaDaemon.args });
    expect(viaDaemon.stderr).toMatch(/instance con is stopped: its console exists only while it runs/);
  });
});
