import { mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/daemon/app.ts';
import { ApiHarness } from '../helpers/api.ts';
import { tempHome } from '../helpers/cli.ts';

const SAME_ORIGIN = { host: 'localhost:8080', origin: 'http://localhost:8080' };

/**
 * What a web page of another site can make a browser send to the daemon (the UNIX socket forwarded with
 * `ssh -L`, or the TCP port), what a read-only or expired token may do, and what reaches the log.
 */
describe('the API against browsers of other sites, with scoped tokens, and without secrets in its log', () => {
  const { home, cleanup } = tempHome('virtnode-guard-');
  let socketApi: ApiHarness;
  let tcp: FastifyInstance;
  const logLines: string[] = [];

  beforeAll(async () => {
    socketApi = await ApiHarness.create(home);
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(chunk.toString());
        done();
      },
    });
    // The TCP listener's app over the same core (inject needs no TLS; the bearer rules are the app's own).
    tcp = await buildApp(socketApi.core, { auth: 'token', logger: pino(sink) });
    await tcp.ready();
  });
  afterAll(async () => {
    await tcp?.close();
    await socketApi?.close();
    cleanup();
  });

  const instanceNames = async () => ((await socketApi.call('GET', '/instances')).body as Array<{ name: string }>).map((i) => i.name);

  it('refuses a request from a page of another site, and a Host that is not a loopback name on the socket, changing nothing', async () => {
    const foreign = await socketApi.call('POST', '/instances', { name: 'evil', diskSize: '16M' }, { host: 'localhost:8080', origin: 'http://evil.example' });
    expect(foreign.status).toBe(403);
    expect(foreign.body.error).toMatchObject({ code: 'PERMISSION', message: expect.stringContaining('http://evil.example is refused') });
    // DNS rebinding: evil.example resolved to 127.0.0.1, so the page's origin matches its Host.
    const rebound = await socketApi.call('POST', '/instances', { name: 'evil', diskSize: '16M' }, { host: 'evil.example:8080', origin: 'http://evil.example:8080' });
    expect(rebound.status).toBe(403);
    expect(rebound.body.error.message).toContain('Host "evil.example:8080" is not this host');
    const sandboxed = await socketApi.call('GET', '/instances', undefined, { ...SAME_ORIGIN, origin: 'null' });
    expect(sandboxed.status).toBe(403);
    expect(await instanceNames()).toEqual([]);

    // The daemon's own web UI (same origin, a loopback name) and clients that are not browsers are served.
    expect((await socketApi.call('GET', '/instances', undefined, SAME_ORIGIN)).status).toBe(200);
    expect((await socketApi.call('GET', '/instances', undefined, { host: '[::1]:8080', origin: 'http://[::1]:8080' })).status).toBe(200);
    expect((await socketApi.call('GET', '/host', undefined, { host: 'localhost' })).status).toBe(200);
  });

  it('makes a browser on the socket spend a ticket for a WebSocket; a client that is not a browser needs none', async () => {
    const refused = await socketApi.app.injectWS('/events', { headers: SAME_ORIGIN }).then(
      (ws) => {
        ws.terminate();
        return 'opened';
      },
      (e: Error) => e.message,
    );
    expect(refused).toMatch(/401/);

    const ticket = await socketApi.call('POST', '/events/tickets', undefined, SAME_ORIGIN);
    expect(ticket.status).toBe(201);
    const withTicket = await socketApi.app.injectWS(ticket.body.url, { headers: SAME_ORIGIN });
    withTicket.terminate();
    const cli = await socketApi.app.injectWS('/events', { headers: { host: 'localhost' } });
    cli.terminate();
  });

  it('lets a read-only token read and take an events ticket, and nothing else; an expired token is refused', async () => {
    const reader = socketApi.core.tokens.create('reader', { scope: 'read-only' }).token;
    const admin = socketApi.core.tokens.create('admin').token;
    const as = (token: string) => ({ authorization: `Bearer ${token}` });
    const call = (token: string, method: 'GET' | 'POST', url: string, payload?: object) => tcp.inject({ method, url, headers: as(token), ...(payload === undefined ? {} : { payload }) });

    expect((await call(reader, 'GET', '/instances')).statusCode).toBe(200);
    const create = await call(reader, 'POST', '/instances', { name: 'ro', diskSize: '16M' });
    expect(create.statusCode).toBe(403);
    expect(create.json().error).toMatchObject({ code: 'PERMISSION', message: 'token reader is read-only: POST changes things' });
    expect((await call(reader, 'POST', '/events/tickets')).statusCode).toBe(201);
    expect((await call(reader, 'POST', '/instances/ro/console-tickets', { kind: 'serial' })).statusCode).toBe(403);
    expect(await instanceNames()).toEqual([]);
    // The same request with an admin token gets as far as the core (which refuses the unknown instance).
    expect((await call(admin, 'POST', '/instances/ro/console-tickets', { kind: 'serial' })).statusCode).toBe(404);

    const shortLived = socketApi.core.tokens.create('brief', { validForMs: 50 }).token;
    expect((await call(shortLived, 'GET', '/instances')).statusCode).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const expired = await call(shortLived, 'GET', '/instances');
    expect(expired.statusCode).toBe(401);
    expect(expired.json().error.message).toBe('the bearer token is not valid (unknown, revoked or expired)');
    expect(socketApi.core.tokens.list().map((t) => [t.name, t.scope, t.expiresAt === undefined ? 'never' : 'ends'])).toEqual([
      ['admin', 'admin', 'never'],
      ['brief', 'admin', 'ends'],
      ['reader', 'read-only', 'never'],
    ]);
  });

  it('logs the route and the path of a request, never its query string (tickets travel there)', async () => {
    const admin = 'vn_not-logged-either';
    const secret = 'ticket-that-must-not-be-logged';
    logLines.length = 0;
    await tcp.inject({ method: 'GET', url: `/events?ticket=${secret}` });
    await tcp.inject({ method: 'GET', url: `/instances/some-vm?ticket=${secret}`, headers: { authorization: `Bearer ${admin}` } });
    const lines = logLines.map((l) => JSON.parse(l) as { req?: { url?: string }; route?: string });
    expect(lines.filter((l) => l.req !== undefined).map((l) => ({ ...l.req, route: l.route }))).toEqual([
      { method: 'GET', url: '/events', route: '/events' },
      { method: 'GET', url: '/instances/some-vm', route: '/instances/:name' },
    ]);
    expect(logLines.join('')).not.toContain(secret);
    expect(logLines.join('')).not.toContain(admin);
  });

  it('lets a client over TCP name host paths only under --allow-path, links resolved, regular files where files are read', async () => {
    const admin = socketApi.core.tokens.create('paths').token;
    const call = (method: 'GET' | 'POST', url: string, payload?: object) =>
      tcp.inject({ method, url, headers: { authorization: `Bearer ${admin}` }, ...(payload === undefined ? {} : { payload }) });
    const refusal = async (method: 'GET' | 'POST', url: string, payload?: object) => {
      const r = await call(method, url, payload);
      return { status: r.statusCode, message: r.json().error?.message as string | undefined };
    };
    // None allowed (the default): not even a file the daemon could read.
    expect(await refusal('POST', '/images/import', { file: '/etc/shadow' })).toEqual({ status: 403, message: 'file: /etc/shadow is outside the directories a client over TCP may name' });
    expect(await refusal('POST', '/instances', { name: 'shadow', kernel: '/etc/shadow', memory: '64M' })).toMatchObject({ status: 403, message: expect.stringContaining('kernel: /etc/shadow is outside') });
    expect(await refusal('POST', '/pools', { name: 'root', path: '/' })).toMatchObject({ status: 403, message: '--path: / is outside the directories a client over TCP may name' });
    expect(await refusal('GET', '/host/check?cpuinfo=/dev/zero')).toMatchObject({ status: 403, message: expect.stringContaining('cpuinfo: /dev/zero is outside') });
    // Nor make the daemon fetch from this host's services or its link (cloud metadata), by address or by name.
    for (const url of ['http://127.0.0.1:9/x.qcow2', 'http://169.254.169.254/x.qcow2', 'http://localhost:9/x.qcow2']) {
      expect(await refusal('POST', '/images/pull', { url })).toMatchObject({ status: 403, message: expect.stringContaining('an address of this host or of a private network') });
    }
    expect(await refusal('POST', '/images/pull', { url: 'https://example.org/x.qcow2', checksumsUrl: 'http://10.0.0.1/SHA256SUMS' })).toMatchObject({ status: 403 });

    const allowed = join(home, 'shared');
    mkdirSync(allowed);
    writeFileSync(join(allowed, 'cpuinfo'), readFileSync('/proc/cpuinfo'));
    symlinkSync('/etc/passwd', join(allowed, 'passwd-link'));
    symlinkSync('/dev/zero', join(allowed, 'zero-link'));
    mkdirSync(join(allowed, 'a-directory'));
    (socketApi.core as { remotePaths: readonly string[] }).remotePaths = [realpathSync(allowed)];
    try {
      expect((await call('GET', `/host/check?cpuinfo=${join(allowed, 'cpuinfo')}`)).statusCode).toBe(200);
      expect(await refusal('GET', `/host/check?cpuinfo=${join(allowed, 'zero-link')}`)).toMatchObject({ status: 403, message: expect.stringContaining('is outside') });
      expect(await refusal('POST', '/images/import', { file: join(allowed, 'passwd-link') })).toMatchObject({ status: 403, message: expect.stringContaining('is outside') });
      expect(await refusal('POST', '/images/import', { file: join(allowed, 'a-directory') })).toMatchObject({ status: 403, message: expect.stringContaining('is not a regular file') });
      expect(await refusal('POST', '/images/import', { file: join(allowed, '..', 'shared', '..', 'virtnode.db') })).toMatchObject({ status: 403, message: expect.stringContaining('is outside') });
      expect(await refusal('POST', '/volumes/none/export', { file: join(allowed, 'cpuinfo') })).toMatchObject({ status: 403, message: expect.stringContaining('already exists') });
      // The host's own user (the socket) is not limited: the same file reaches the core, which judges it.
      expect((await socketApi.call('GET', `/host/check?cpuinfo=${join(allowed, 'zero-link')}`)).status).not.toBe(403);
    } finally {
      (socketApi.core as { remotePaths: readonly string[] }).remotePaths = [];
      socketApi.core.tokens.revoke('paths');
    }
    expect(await instanceNames()).toEqual([]);
  });
});
