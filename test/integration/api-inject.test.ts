import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiHarness } from '../helpers/api.ts';
import { tempHome, waitForText } from '../helpers/cli.ts';
import { createQcow2, TestHttpServer } from '../helpers/http-server.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const tinyVm = (name: string) => ({ name, memory: '128M', kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline });

describe('REST API through inject(): every route, bad input refused with the error shape, responses match the OpenAPI document', () => {
  const { home, cleanup } = tempHome('virtnode-api-');
  let api: ApiHarness;
  let http: TestHttpServer;
  const files = join(home, 'files');

  beforeAll(async () => {
    api = await ApiHarness.create(home);
    http = await TestHttpServer.start();
    mkdirSync(files);
  });
  afterAll(async () => {
    await api?.close();
    await http?.close();
    cleanup();
  });

  const snapshot = async () => ({
    instances: (await api.call('GET', '/instances')).body,
    images: (await api.call('GET', '/images')).body,
    dirs: readdirSync(join(home, 'instances')).sort(),
  });

  const waitOp = async (id: string) => {
    const r = await api.call('GET', `/operations/${id}?wait=120`);
    expect(r.status).toBe(200);
    return r.body;
  };

  it('serves the OpenAPI document, and every route in it declares its responses, errors included', async () => {
    const r = await api.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ openapi: '3.0.3', paths: expect.any(Object) });
    const paths = Object.entries(api.openapi().paths);
    expect(paths.length).toBeGreaterThan(15);
    for (const [path, methods] of paths) {
      for (const [method, operation] of Object.entries(methods)) {
        if (path === '/events') continue; // a WebSocket: its messages are documented on the route
        const codes = Object.keys(operation.responses ?? {});
        expect(codes.some((c) => /^2\d\d$/.test(c)), `${method} ${path} has a success response schema`).toBe(true);
        if (path !== '/metrics') expect(codes, `${method} ${path} documents its errors`).toEqual(expect.arrayContaining(['4XX', '5XX']));
      }
    }
    const docs = await api.app.inject({ method: 'GET', url: '/docs/' });
    expect(docs.statusCode).toBe(200);
    expect(docs.body).toContain('swagger');
  });

  it('GET /host and /host/check', async () => {
    const host = await api.call('GET', '/host');
    expect(host.status).toBe(200);
    expect(host.body).toMatchObject({ stateDir: home, cpus: expect.any(Number) });
    expect((await api.call('GET', '/host/check?refresh=perhaps')).status).toBe(400);
    const check = await api.call('GET', '/host/check');
    expect(check.status).toBe(200);
    expect(check.body.checks.length).toBeGreaterThan(5);
  }, 120_000);

  it('bad input is answered 4xx with the error shape, and nothing changes', async () => {
    const before = await snapshot();
    const cases: Array<[string, string, unknown, number, RegExp]> = [
      ['POST', '/instances', { name: 'Bad_Name', diskSize: '1G' }, 400, /name/],
      ['POST', '/instances', { name: 'a', cpus: '2', diskSize: '1G' }, 400, /cpus: must be integer/],
      ['POST', '/instances', { name: 'a', diskSize: '1G', color: 'red' }, 400, /unknown field "color"/],
      ['POST', '/instances', { name: '../../etc', diskSize: '1G' }, 400, /name/],
      ['POST', '/instances', { name: 'a', kernel: 'relative/vmlinuz' }, 400, /kernel: "relative\/vmlinuz" is not an absolute path/],
      ['POST', '/instances', { name: 'a', kernel: '/etc/../nonexistent' }, 400, /--kernel: \/etc\/..\/nonexistent does not exist/],
      ['POST', '/instances', { name: 'a', diskSize: '1G', accel: 'xen' }, 400, /accel/],
      ['POST', '/instances', { name: 'a', memory: '1P', diskSize: '1G' }, 400, /--memory: "1P"/],
      ['POST', '/instances', '{"name": "a", ', 400, /JSON/i],
      ['POST', '/instances', [1, 2], 400, /must be object/],
      ['GET', '/instances/..%2F..%2Fetc%2Fpasswd', undefined, 400, /name: "..\/..\/etc\/passwd" is not a valid name/],
      ['GET', '/instances/%2e%2e', undefined, 404, /no route GET \//], // the URL is normalized to / before routing
      ['GET', '/instances/nope', undefined, 404, /instance nope does not exist/],
      ['POST', '/instances/nope/start', undefined, 404, /does not exist/],
      ['POST', '/instances/nope/stop', { force: true }, 404, /does not exist/],
      ['POST', '/instances/nope/stop', { force: 'yes' }, 400, /force/],
      ['POST', '/instances/nope/restart', { timeoutSeconds: -1 }, 400, /timeoutSeconds/],
      ['POST', '/instances/nope/pause', undefined, 404, /does not exist/],
      ['POST', '/instances/nope/resume', undefined, 404, /does not exist/],
      ['PATCH', '/instances/nope', { autostart: true }, 404, /does not exist/],
      ['PATCH', '/instances/nope', { restartPolicy: 'sometimes' }, 400, /restartPolicy/],
      ['PATCH', '/instances/nope', {}, 400, /body/],
      ['DELETE', '/instances/nope', undefined, 404, /does not exist/],
      ['DELETE', '/instances/nope?force=maybe', undefined, 400, /force/],
      ['DELETE', '/instances/x?color=red', undefined, 400, /unknown field "color"/],
      ['POST', '/instances/launch', { image: 'nope' }, 404, /image nope/],
      ['POST', '/instances/launch', { image: 'nope', userData: '#cloud-config\nusers: 7\n' }, 400, /not a valid cloud-config/],
      ['POST', '/instances/launch', { image: 'nope', sshAuthorizedKeys: ['not a key'] }, 400, /sshAuthorizedKeys/],
      ['POST', '/instances/launch', { image: 'nope', name: 'UPPER' }, 400, /name/],
      ['POST', '/instances/launch', { image: 'nope', sudo: true }, 400, /unknown field "sudo"/],
      ['POST', '/images/import', { file: 1 }, 400, /file/],
      ['POST', '/images/import', { file: '/x.qcow2', name: '../x' }, 400, /name/],
      ['POST', '/images/pull', { url: 'ftp://example.org/x.img' }, 400, /url/],
      ['POST', '/images/pull', { url: 'http://127.0.0.1/x.img', sha256: 'abc' }, 400, /sha256/],
      ['GET', '/images/..%2F..%2Fvirtnode.db', undefined, 400, /not a valid name/],
      ['GET', '/images/nope', undefined, 404, /nope/],
      ['DELETE', '/images/nope', undefined, 404, /nope/],
      ['GET', '/operations/not-an-id', undefined, 400, /id/],
      ['GET', '/operations/00000000-0000-0000-0000-000000000000', undefined, 404, /does not exist/],
      ['GET', '/operations/00000000-0000-0000-0000-000000000000/wait?timeout=1', undefined, 404, /does not exist/],
      ['DELETE', '/operations/00000000-0000-0000-0000-000000000000', undefined, 404, /does not exist/],
      ['GET', '/no/such/route', undefined, 404, /no route GET \/no\/such\/route/],
    ];
    for (const [method, url, body, status, message] of cases) {
      const r = await api.call(method, url, body);
      expect(r.status, `${method} ${url} ${JSON.stringify(body)} → ${JSON.stringify(r.body)}`).toBe(status);
      expect(r.body.error.message, `${method} ${url}`).toMatch(message);
    }
    // Oversized body: refused before it is parsed.
    const huge = await api.call('POST', '/instances/launch', { image: 'x', userData: `#cloud-config\n${'a'.repeat(3 * 1024 * 1024)}` });
    expect(huge.status).toBe(413);
    expect(huge.body.error).toMatchObject({ code: 'INVALID', message: expect.stringMatching(/larger than/) });
    expect(await snapshot()).toEqual(before);
  });

  it('instances: create, list, info, pause, resume, set policy, stop (operation), start, restart (operation), delete', async () => {
    const created = await api.call('POST', '/instances', { ...tinyVm('api-vm'), start: true, restartPolicy: 'on-failure' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ name: 'api-vm', state: 'running', restartPolicy: 'on-failure', autostart: false, pid: expect.any(Number) });
    await waitForText(join(home, 'instances', 'api-vm', 'console.log'), TEST_GUEST_READY_MARKER, 60_000);
    expect((await api.call('POST', '/instances', tinyVm('api-vm'))).status).toBe(409);
    const list = await api.call('GET', '/instances');
    expect(list.body.map((i: { name: string }) => i.name)).toEqual(['api-vm']);
    expect((await api.call('GET', '/instances/api-vm')).body.state).toBe('running');
    expect((await api.call('POST', '/instances/api-vm/pause')).body.state).toBe('paused');
    expect((await api.call('POST', '/instances/api-vm/pause')).status).toBe(409);
    expect((await api.call('POST', '/instances/api-vm/resume')).body.state).toBe('running');
    const patched = await api.call('PATCH', '/instances/api-vm', { autostart: true, restartPolicy: 'always' });
    expect(patched.body).toMatchObject({ autostart: true, restartPolicy: 'always' });

    const stop = await api.call('POST', '/instances/api-vm/stop', { timeoutSeconds: 30 });
    expect(stop.status).toBe(202);
    expect(stop.body).toMatchObject({ kind: 'stop', target: 'instances/api-vm', status: 'running' });
    const stopped = await waitOp(stop.body.id);
    expect(stopped).toMatchObject({ status: 'succeeded', result: { method: 'acpi', instance: { state: 'stopped' } }, finishedAt: expect.any(String) });
    expect((await api.call('GET', '/operations')).body.map((o: { id: string }) => o.id)).toContain(stop.body.id);

    expect((await api.call('POST', '/instances/api-vm/start')).body.state).toBe('running');
    const restart = await api.call('POST', '/instances/api-vm/restart', { force: true });
    expect(restart.status).toBe(202);
    const waited = await api.call('GET', `/operations/${restart.body.id}/wait?timeout=60`);
    expect(waited.body).toMatchObject({ status: 'succeeded', result: { instance: { state: 'running' } } });
    expect(waited.body.result.instance.pid).not.toBe(created.body.pid);

    expect((await api.call('DELETE', '/instances/api-vm')).status).toBe(409); // running: needs force
    const deleted = await api.call('DELETE', '/instances/api-vm?force=true');
    expect(deleted.body).toEqual({ name: 'api-vm', deleted: true });
    expect((await api.call('GET', '/instances')).body).toEqual([]);
  }, 180_000);

  it('images: import and pull are operations; launch from an image (operation with phases); cancel; remove', async () => {
    const qcow2 = join(files, 'disk.qcow2');
    const body = await createQcow2(qcow2, 0x11);
    const imported = await api.call('POST', '/images/import', { file: qcow2, name: 'blank' });
    expect(imported.status).toBe(202);
    expect(await waitOp(imported.body.id)).toMatchObject({ status: 'succeeded', result: { outcome: 'stored', image: { name: 'blank', format: 'qcow2' } } });

    http.serve('/other.qcow2', await createQcow2(join(files, 'other.qcow2'), 0x22));
    const pulled = await api.call('POST', '/images/pull', { url: http.url('/other.qcow2'), name: 'other' });
    expect(await waitOp(pulled.body.id)).toMatchObject({ status: 'succeeded', result: { image: { name: 'other' }, verifiedBy: null } });
    expect((await api.call('GET', '/images')).body.map((i: { name: string }) => i.name)).toEqual(['blank', 'other']);
    expect((await api.call('GET', '/images/blank')).body.fileSize).toBeGreaterThan(0);
    expect(body.length).toBeGreaterThan(0);

    // Cancel: a pull from a server that never answers ends as cancelled.
    http.serve('/hang.qcow2', { body: Buffer.alloc(10), hang: true });
    const hanging = await api.call('POST', '/images/pull', { url: http.url('/hang.qcow2'), name: 'hang' });
    const cancel = await api.call('DELETE', `/operations/${hanging.body.id}`);
    expect(cancel.status).toBe(202);
    expect(await waitOp(hanging.body.id)).toMatchObject({ status: 'cancelled', error: { code: 'INVALID_STATE' } });
    expect((await api.call('DELETE', `/operations/${hanging.body.id}`)).status).toBe(409);

    const launched = await api.call('POST', '/instances/launch', { image: 'blank', name: 'launched', memory: '128M', wait: false, seed: 'http' });
    expect(launched.status, JSON.stringify(launched.body)).toBe(202);
    const op = await waitOp(launched.body.id);
    expect(op, JSON.stringify(op)).toMatchObject({ status: 'succeeded', target: 'instances/launched', result: { instance: { name: 'launched', state: 'running', image: { name: 'blank' } } } });
    expect(op.progress.entries.map((e: { phase: string }) => e.phase)).toEqual(['image', 'disk', 'seed', 'booting']);
    expect((await api.call('DELETE', '/images/blank')).status).toBe(409); // in use
    expect((await api.call('DELETE', '/instances/launched?force=true')).status).toBe(200);
    const removed = await api.call('DELETE', '/images/blank');
    expect(removed.body).toMatchObject({ image: { name: 'blank' }, fileDeleted: true });
    expect((await api.call('DELETE', '/images/other')).status).toBe(200);
  }, 180_000);

  it('the events WebSocket sends a hello with every instance, then state changes', async () => {
    const messages: Array<{ type: string; name?: string; state?: string }> = [];
    const ws = await api.app.injectWS('/events', {}, { onInit: (socket) => socket.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString()))) });
    const created = await api.call('POST', '/instances', { ...tinyVm('evented'), start: true });
    expect(created.status).toBe(201);
    const deadline = Date.now() + 10_000;
    while (!messages.some((m) => m.type === 'instance' && m.name === 'evented' && m.state === 'running') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(messages[0]).toMatchObject({ type: 'hello' });
    expect(messages).toContainEqual(expect.objectContaining({ type: 'instance', name: 'evented', state: 'running' }));
    ws.terminate();
    expect((await api.call('DELETE', '/instances/evented?force=true')).status).toBe(200);
  });

  it('/metrics answers in the Prometheus text format', async () => {
    const r = await api.call('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(String(r.headers['content-type'])).toMatch(/^text\/plain; version=0.0.4/);
    expect(r.body).toContain('# TYPE virtnode_host_cpus gauge');
  });

  it('every route of the API was exercised by this file', () => {
    const routes = Object.entries(api.openapi().paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`));
    const missing = routes.filter((r) => !api.exercised.has(r) && r !== 'GET /events');
    expect(missing).toEqual([]);
  });
});
