import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiHarness } from '../helpers/api.ts';
import { REPO_ROOT, tempHome, waitForText } from '../helpers/cli.ts';
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
    await api?.call('DELETE', '/networks/apinet').catch(() => {}); // if the network test failed half-way
    for (const name of ['cloned', 'tpllaunch', 'snappy']) await api?.call('DELETE', `/instances/${name}?force=true`).catch(() => {});
    await api?.close();
    await http?.close();
    cleanup();
  });

  const snapshot = async () => ({
    instances: (await api.call('GET', '/instances')).body,
    images: (await api.call('GET', '/images')).body,
    volumes: (await api.call('GET', '/volumes')).body,
    templates: (await api.call('GET', '/templates')).body,
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
    const capture = await api.call('GET', `/host/check?cpuinfo=${encodeURIComponent(join(REPO_ROOT, 'test/fixtures/cpuinfo/intel-xeon-vmx.txt'))}`);
    expect(capture.body.checks).toContainEqual(expect.objectContaining({ id: 'cpu.hwvirt', status: 'PASS', detail: expect.stringContaining('vmx') }));
    const missing = await api.call('GET', '/host/check?cpuinfo=%2Fnonexistent%2Fcpuinfo');
    expect(missing.status).toBe(404);
    expect(missing.body.error.message).toBe('cannot read cpuinfo file /nonexistent/cpuinfo');
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
      ['POST', '/instances/nope/resources', { cpus: 2 }, 404, /does not exist/],
      ['POST', '/instances/nope/resources', {}, 400, /body/],
      ['POST', '/instances/nope/resources', { cpus: 0 }, 400, /cpus/],
      ['POST', '/instances/nope/resources', { memory: 'lots' }, 400, /memory/],
      ['POST', '/instances/nope/move', { host: 'h2' }, 400, /host: this host is not in a cluster: there is no host h2 to move to/],
      ['POST', '/instances/nope/move', {}, 400, /host/],
      ['POST', '/instances/nope/move', { host: 'h2', downtimeLimitMs: 0 }, 400, /^body\/downtimeLimitMs: 0 is out of range: use 1 to 60000$/],
      ['POST', '/instances/nope/move', { host: 'h2', downtimeLimitMs: 2.5 }, 400, /^body\/downtimeLimitMs: must be integer$/],
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
      ['GET', '/operations?status=done', undefined, 400, /"done" is not valid: use running, succeeded, failed, cancelled/],
      ['GET', '/operations?limit=0', undefined, 400, /limit/],
      ['GET', '/operations?limit=ten', undefined, 400, /limit/],
      ['GET', '/no/such/route', undefined, 404, /no route GET \/no\/such\/route/],
      ['GET', '/networks/nope', undefined, 404, /nope/],
      ['GET', '/networks/..%2Fx', undefined, 400, /not a valid name/],
      ['POST', '/networks', { name: 'n1', mode: 'mesh' }, 400, /"mesh" is not valid: use nat, isolated, bridge/],
      ['POST', '/networks', { name: 'n1', vlan: 4 }, 400, /unknown field "vlan"/],
      ['POST', '/networks', { name: 'n1', subnet: 'not-a-cidr' }, 400, /subnet/],
      ['DELETE', '/networks/nope', undefined, 404, /nope/],
      ['GET', '/networks/nope/leases', undefined, 404, /network nope does not exist/],
      ['GET', '/networks/Bad_Name/leases', undefined, 400, /name: "Bad_Name" is not a valid name/],
      ['POST', '/networks', { name: 'x'.repeat(64) }, 400, /name: "x+" is not a valid name/],
      ['POST', '/networks', { name: 'n1', mode: 'bridge', bridge: 'way-too-long-bridge' }, 400, /--bridge: "way-too-long-bridge" is longer than 15 characters/],
      ['GET', '/instances/nope/snapshots', undefined, 404, /instance nope does not exist/],
      ['GET', '/instances/..%2F..%2Fetc/snapshots', undefined, 400, /not a valid name/],
      ['POST', '/instances/nope/snapshots', { name: 's1' }, 404, /instance nope does not exist/],
      ['POST', '/instances/nope/snapshots', { name: '../s1' }, 400, /name/],
      ['POST', '/instances/nope/snapshots', { name: 's1', memory: true }, 400, /unknown field "memory"/],
      ['POST', '/instances/nope/snapshots/s1/revert', undefined, 404, /instance nope does not exist/],
      ['POST', '/instances/nope/snapshots/..%2F..%2Fx/revert', undefined, 400, /not a valid name/],
      ['DELETE', '/instances/nope/snapshots/s1', undefined, 404, /instance nope does not exist/],
      ['DELETE', '/instances/nope/snapshots/S1', undefined, 400, /snap/],
      ['GET', '/pools/nope', undefined, 404, /pool nope does not exist/],
      ['GET', '/pools/..%2Fx', undefined, 400, /not a valid name/],
      ['GET', '/volumes?pool=nope', undefined, 404, /pool nope does not exist/],
      ['GET', '/volumes?pool=..%2Fx', undefined, 400, /pool/],
      ['GET', '/volumes/nope', undefined, 404, /volume nope does not exist/],
      ['POST', '/volumes', { name: 'v1', size: '16M', color: 'red' }, 400, /unknown field "color"/],
      ['POST', '/volumes', { name: '../../v1', size: '16M' }, 400, /name/],
      ['POST', '/volumes', { name: 'v1', size: 'huge' }, 400, /"huge" is not a size/],
      ['POST', '/volumes', { name: 'v1', size: '16M', format: 'vmdk' }, 400, /format/],
      ['POST', '/volumes', { name: 'v1', size: '16M', pool: 'nope' }, 404, /pool nope does not exist/],
      ['DELETE', '/volumes/nope', undefined, 404, /volume nope does not exist/],
      ['DELETE', '/volumes/..%2Fx', undefined, 400, /volume: "\.\.\/x" is not a valid name/],
      ['POST', '/pools', { name: 'p1', path: 'relative/dir' }, 400, /--path: "relative\/dir" is not an absolute path/],
      ['POST', '/pools', { name: '../p1', path: '/tmp' }, 400, /name: "\.\.\/p1" is not a valid name/],
      ['POST', '/pools', { name: 'p1', path: '/tmp', color: 'red' }, 400, /unknown field "color"/],
      ['DELETE', '/pools/nope', undefined, 404, /pool nope does not exist/],
      ['DELETE', '/pools/..%2Fx', undefined, 400, /not a valid name/],
      ['POST', '/volumes/nope/resize', { size: '1G' }, 404, /volume nope does not exist/],
      ['POST', '/volumes/nope/resize', { size: 'huge' }, 400, /"huge" is not a size/],
      ['POST', '/volumes/..%2Fx/resize', { size: '1G' }, 400, /volume: "\.\.\/x" is not a valid name/],
      ['POST', '/volumes/nope/resize', { size: '1G', shrink: true }, 400, /unknown field "shrink"/],
      ['POST', '/volumes/nope/convert', { format: 'raw' }, 404, /volume nope does not exist/],
      ['POST', '/volumes/nope/convert', { format: 'vmdk' }, 400, /--format: "vmdk" is not a disk format/],
      ['GET', '/volumes/nope/check', undefined, 404, /volume nope does not exist/],
      ['POST', '/volumes/import', { file: 'relative.img' }, 400, /file: "relative.img" is not an absolute path/],
      ['POST', '/volumes/import', { file: '/no/such/file.img' }, 400, /is not an existing file/],
      ['POST', '/volumes/import', { file: '/no/such/file.img', pool: 'nope', extra: 1 }, 400, /unknown field "extra"/],
      ['POST', '/volumes/nope/export', { file: '/tmp/nope.raw' }, 404, /volume nope does not exist/],
      ['POST', '/volumes/nope/export', { file: 'nope.raw' }, 400, /file: "nope.raw" is not an absolute path/],
      ['GET', '/templates/nope', undefined, 404, /template nope does not exist/],
      ['GET', '/templates/..%2Fx', undefined, 400, /not a valid name/],
      ['POST', '/templates', { instance: 'nope' }, 404, /instance nope does not exist/],
      ['POST', '/templates', { instance: '../../etc' }, 400, /instance/],
      ['POST', '/templates', { instance: 'nope', seal: false }, 400, /unknown field "seal"/],
      ['DELETE', '/templates/nope', undefined, 404, /template nope does not exist/],
      ['POST', '/templates/nope/verify', undefined, 404, /template nope does not exist/],
      ['POST', '/templates/..%2Fx/verify', undefined, 400, /not a valid name/],
      ['POST', '/instances/nope/clone', { name: 'c1' }, 404, /SRC: there is no instance or template named nope/],
      ['POST', '/instances/nope/clone', { name: '../c1' }, 400, /name/],
      ['POST', '/instances/nope/clone', { name: 'c1', start: true }, 400, /unknown field "start"/],
      ['POST', '/images/build', { recipe: 'debian-99' }, 400, /"debian-99" is not a recipe virtnode knows/],
      ['POST', '/images/build', { recipe: 'debian-12', size: '10M' }, 400, /at least 1 GiB/],
      ['POST', '/images/build', { recipe: 'debian-12', size: 'huge' }, 400, /"huge" is not a size/],
      ['POST', '/images/build', { recipe: 'debian-12', packages: ['Bad Pkg'] }, 400, /packages/],
      ['POST', '/images/build', { recipe: 'debian-12', name: '../x' }, 400, /name/],
      ['POST', '/images/build', { recipe: 'debian-12', mirror: 'http://x' }, 400, /unknown field "mirror"/],
      ['GET', '/instances/nope/nics', undefined, 404, /instance nope does not exist/],
      ['POST', '/instances/nope/nics', { network: 'user' }, 404, /instance nope does not exist/],
      ['POST', '/instances/nope/nics', { network: 'user', model: 'e1000' }, 400, /unknown field "model"/],
      ['DELETE', '/instances/nope/nics/0', undefined, 404, /instance nope does not exist/],
      ['GET', '/instances/nope/ports', undefined, 404, /instance nope does not exist/],
      ['POST', '/instances/nope/ports', { ports: '8080:80' }, 404, /instance nope does not exist/],
      ['POST', '/instances/nope/ports', { ports: '8080-80' }, 400, /ports/],
      ['DELETE', '/instances/nope/ports/8080', undefined, 404, /instance nope does not exist/],
      ['POST', '/instances/nope/disks', { volume: 'v1' }, 404, /volume v1 does not exist|instance nope does not exist/],
      ['POST', '/instances/nope/disks', { volume: '../v1' }, 400, /volume/],
      ['DELETE', '/instances/nope/disks/v1', undefined, 404, /does not exist/],
      ['DELETE', '/instances/..%2Fx/disks/v1', undefined, 400, /not a valid name/],
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
    const recent = await api.call('GET', '/operations?status=succeeded&limit=1');
    expect(recent.body.map((o: { id: string }) => o.id)).toEqual([stop.body.id]); // newest first
    // The list follows each lifecycle call at once (it is cached between changes).
    expect((await api.call('GET', '/instances')).body[0]).toMatchObject({ name: 'api-vm', state: 'stopped' });

    expect((await api.call('POST', '/instances/api-vm/start')).body.state).toBe('running');
    expect((await api.call('GET', '/instances')).body[0]).toMatchObject({ name: 'api-vm', state: 'running' });
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
    // Its error is the core's account of the interruption (what a local pull says on Ctrl-C).
    expect(await waitOp(hanging.body.id)).toMatchObject({ status: 'cancelled', error: { code: 'TIMEOUT', message: expect.stringMatching(/^download of .*hang.qcow2 was interrupted after/) } });
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
    // Browsers open /events with a ticket (they cannot send the token on a WebSocket).
    const ticket = await api.call('POST', '/events/tickets');
    expect(ticket.status).toBe(201);
    expect(ticket.body.url).toBe(`/events?ticket=${ticket.body.ticket}`);
    // The console log (`virtnode logs` through the daemon): what the guest printed so far.
    await waitForText(join(home, 'instances', 'evented', 'console.log'), TEST_GUEST_READY_MARKER, 60_000);
    const log = await api.call('GET', '/instances/evented/console-log');
    expect(log.status).toBe(200);
    expect(String(log.headers['content-type'])).toBe('application/octet-stream');
    expect(log.body).toContain(TEST_GUEST_READY_MARKER);
    // The last lines by default, or as many as asked, or all of it; never both.
    // (The guest may still print between two reads: each answer is checked against a whole log read after it.)
    const lines = (text: unknown) => String(text).split(/(?<=\n)/).filter((l) => l !== '');
    const lastTwo = String((await api.call('GET', '/instances/evented/console-log?lines=2')).body);
    const whole = String((await api.call('GET', '/instances/evented/console-log?all=true')).body);
    expect(lines(lastTwo)).toHaveLength(2);
    expect(whole).toContain(lastTwo);
    expect(whole).toContain(String(log.body));
    expect(lines(log.body).length).toBeLessThanOrEqual(200);
    expect((await api.call('GET', '/instances/evented/console-log?lines=2&all=true')).status).toBe(400);
    expect((await api.call('GET', '/instances/evented/console-log?lines=-1')).status).toBe(400);
    expect((await api.call('GET', '/instances/nope/console-log')).status).toBe(404);
    expect((await api.call('GET', '/instances/evented/console-log?follow=perhaps')).status).toBe(400);
    expect((await api.call('GET', '/instances/..%2Fetc/console-log')).status).toBe(400);
    expect((await api.call('DELETE', '/instances/evented?force=true')).status).toBe(200);
  }, 90_000);

  it('networks: create an isolated network, list it, see its host side, remove it', async () => {
    const created = await api.call('POST', '/networks', { name: 'apinet', mode: 'isolated', subnet: '10.231.77.0/24' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ name: 'apinet', mode: 'isolated', subnet: '10.231.77.0/24', up: true, instances: [] });
    expect((await api.call('POST', '/networks', { name: 'apinet', mode: 'isolated', subnet: '10.231.78.0/24' })).status).toBe(409);
    expect((await api.call('GET', '/networks')).body.map((n: { name: string; instances: string[] }) => [n.name, n.instances])).toEqual([['apinet', []]]);
    expect(await api.call('GET', '/networks/apinet/leases')).toMatchObject({ status: 200, body: [] });
    expect((await api.call('GET', '/networks/apinet')).body).toMatchObject({ name: 'apinet', gateway: '10.231.77.1', dnsmasqPid: expect.any(Number) });
    expect((await api.call('DELETE', '/networks/apinet')).body).toEqual({ name: 'apinet', deleted: true });
    expect((await api.call('GET', '/networks/apinet')).status).toBe(404);
  });

  it('pools and volumes: list, info, create, resize, check, convert, export, import, delete; a pool created and removed', async () => {
    const pools = await api.call('GET', '/pools');
    expect(pools.status).toBe(200);
    expect(pools.body).toContainEqual(expect.objectContaining({ name: 'default', path: join(home, 'pools', 'default'), volumes: 0 }));
    const created = await api.call('POST', '/volumes', { name: 'apivol', size: '16M' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ name: 'apivol', pool: 'default', format: 'qcow2', state: 'ready', virtualSize: 16 * 1024 * 1024 });
    expect((await api.call('POST', '/volumes', { name: 'apivol', size: '16M' })).status).toBe(409);
    expect((await api.call('GET', '/volumes?pool=default')).body.map((v: { name: string }) => v.name)).toEqual(['apivol']);
    const info = await api.call('GET', '/volumes/apivol');
    expect(info.body.chain).toEqual([expect.objectContaining({ path: created.body.path, format: 'qcow2' })]);
    expect((await api.call('GET', '/pools/default')).body).toMatchObject({ volumes: 1, volumeNames: ['apivol'] });
    expect((await api.call('POST', '/volumes/apivol/resize', { size: '32M' })).body).toEqual({ volume: 'apivol', from: 16 * 2 ** 20, to: 32 * 2 ** 20, live: false });
    expect((await api.call('GET', '/volumes/apivol/check')).body).toMatchObject({ clean: true, supported: true, corruptions: 0 });
    const convert = await api.call('POST', '/volumes/apivol/convert', { format: 'raw' });
    expect(convert.status).toBe(202);
    expect(await waitOp(convert.body.id)).toMatchObject({ status: 'succeeded', kind: 'volume-convert', result: { name: 'apivol', format: 'raw', virtualSize: 32 * 2 ** 20 } });
    const exportedFile = join(files, 'apivol-export.qcow2');
    const exported = await api.call('POST', '/volumes/apivol/export', { file: exportedFile, format: 'qcow2' });
    expect(exported.status).toBe(202);
    expect(await waitOp(exported.body.id)).toMatchObject({ status: 'succeeded', kind: 'volume-export', result: { path: exportedFile, format: 'qcow2' } });
    const imported = await api.call('POST', '/volumes/import', { file: exportedFile, name: 'apicopy' });
    expect(imported.status).toBe(202);
    expect(await waitOp(imported.body.id)).toMatchObject({ status: 'succeeded', kind: 'volume-import', result: { name: 'apicopy', format: 'qcow2', virtualSize: 32 * 2 ** 20 } });
    expect((await api.call('GET', '/instance-disks')).status).toBe(200);
    const poolDir = join(files, 'apipool');
    mkdirSync(poolDir);
    const pool = await api.call('POST', '/pools', { name: 'apipool', path: poolDir });
    expect(pool.status, JSON.stringify(pool.body)).toBe(201);
    expect(pool.body).toMatchObject({ name: 'apipool', path: poolDir, volumes: 0, volumeNames: [] });
    expect((await api.call('DELETE', '/pools/apipool')).body).toEqual({ name: 'apipool', deleted: true });
    expect((await api.call('DELETE', '/volumes/apicopy')).body).toEqual({ name: 'apicopy', deleted: true });
    expect((await api.call('DELETE', '/volumes/apivol')).body).toEqual({ name: 'apivol', deleted: true });
    expect((await api.call('GET', '/volumes/apivol')).status).toBe(404);
    expect(readdirSync(join(home, 'pools', 'default'))).toEqual([]);
  });

  it('snapshots of a stopped instance (operations), then a template of it and a linked clone of the template', async () => {
    const wait = async (id: string) => (await api.call('GET', `/operations/${id}?wait=600`)).body;
    const created = await api.call('POST', '/instances', { ...tinyVm('snappy'), diskSize: '64M' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);

    for (const name of ['first', 'second']) {
      const r = await api.call('POST', '/instances/snappy/snapshots', { name });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      expect(r.body).toMatchObject({ kind: 'snapshot-create', target: 'instances/snappy' });
      expect(await wait(r.body.id)).toMatchObject({ status: 'succeeded', result: { snapshot: { name, kind: 'internal', memory: false } } });
    }
    expect((await api.call('POST', '/instances/snappy/snapshots', { name: 'first' })).status).toBe(409);
    const listed = await api.call('GET', '/instances/snappy/snapshots');
    expect(listed.body).toMatchObject([
      { name: 'first', parent: null, current: false },
      { name: 'second', parent: 'first', current: true },
    ]);
    // A template refuses an instance with snapshots, before any operation starts.
    expect((await api.call('POST', '/templates', { instance: 'snappy' })).status).toBe(409);
    const revert = await api.call('POST', '/instances/snappy/snapshots/first/revert');
    expect(revert.status).toBe(202);
    expect(await wait(revert.body.id)).toMatchObject({ status: 'succeeded', kind: 'snapshot-revert', result: { snapshot: { name: 'first' } } });
    for (const name of ['second', 'first']) {
      const r = await api.call('DELETE', `/instances/snappy/snapshots/${name}`);
      expect(r.status).toBe(202);
      expect(await wait(r.body.id)).toMatchObject({ status: 'succeeded', kind: 'snapshot-delete' });
    }
    // No body: a default name, as `virtnode snapshot create INSTANCE`.
    const unnamed = await api.call('POST', '/instances/snappy/snapshots');
    expect(unnamed.status, JSON.stringify(unnamed.body)).toBe(202);
    const named = (await wait(unnamed.body.id)).result.snapshot.name;
    expect(named).toMatch(/^snap-\d{8}-\d{6}$/);
    expect((await wait((await api.call('DELETE', `/instances/snappy/snapshots/${named}`)).body.id)).status).toBe('succeeded');
    expect((await api.call('GET', '/instances/snappy/snapshots')).body).toEqual([]);
    expect((await api.call('DELETE', '/instances/snappy/snapshots/first')).status).toBe(404);

    const made = await api.call('POST', '/templates', { instance: 'snappy', name: 'snaptpl' });
    expect(made.status, JSON.stringify(made.body)).toBe(202);
    const templated = await wait(made.body.id);
    expect(templated, JSON.stringify(templated)).toMatchObject({ status: 'succeeded', result: { template: { name: 'snaptpl', source: 'snappy', sealMethod: 'offline', clones: [] } } });
    expect((await api.call('GET', '/instances/snappy')).status).toBe(404);
    expect((await api.call('GET', '/templates')).body.map((t: { name: string }) => t.name)).toEqual(['snaptpl']);
    const template = (await api.call('GET', '/templates/snaptpl')).body;
    expect(template).toMatchObject({ name: 'snaptpl', format: 'qcow2', defaults: { memoryMiB: 128 } });
    expect((await api.call('POST', '/templates/snaptpl/verify')).body).toEqual({ name: 'snaptpl', sha256: template.sha256, unchanged: true });
    // The core's checks in the CLI's order: the name taken is refused first, as `template create nope snaptpl` says.
    const taken = await api.call('POST', '/templates', { instance: 'nope', name: 'snaptpl' });
    expect(taken.status).toBe(409);
    expect(taken.body.error.message).toBe('NAME: template snaptpl already exists');

    expect((await api.call('POST', '/instances/snaptpl/clone', { name: 'snaptpl' })).status).toBe(400);
    const clone = await api.call('POST', '/instances/snaptpl/clone', { name: 'cloned', linked: true });
    expect(clone.status, JSON.stringify(clone.body)).toBe(202);
    expect(await wait(clone.body.id)).toMatchObject({
      status: 'succeeded',
      target: 'instances/cloned',
      result: { instance: { name: 'cloned', state: 'defined' }, clone: { source: 'snaptpl', from: 'template', mode: 'linked', seal: null } },
    });
    expect((await api.call('POST', '/instances/snaptpl/clone', { name: 'cloned' })).status).toBe(409);
    // launch TEMPLATE: the same launch source as the CLI's (an overlay on the template's disk, its kernel boot)
    const fromTemplate = await api.call('POST', '/instances/launch', { image: 'snaptpl', name: 'tpllaunch', memory: '128M', wait: false, seed: 'http' });
    expect(fromTemplate.status, JSON.stringify(fromTemplate.body)).toBe(202);
    expect(await wait(fromTemplate.body.id)).toMatchObject({ status: 'succeeded', result: { instance: { name: 'tpllaunch', state: 'running', image: { name: 'snaptpl' }, boot: { kernel: expect.any(String) } } } });
    expect((await api.call('GET', '/templates/snaptpl')).body.clones).toEqual(['cloned', 'tpllaunch']);
    expect((await api.call('DELETE', '/instances/tpllaunch?force=true')).status).toBe(200);
    expect((await api.call('GET', '/templates/snaptpl')).body.clones).toEqual(['cloned']);
    expect((await api.call('DELETE', '/templates/snaptpl')).status).toBe(409); // the clone sits on it
    expect((await api.call('DELETE', '/instances/cloned')).status).toBe(200);
    expect((await api.call('DELETE', '/templates/snaptpl')).body).toEqual({ name: 'snaptpl', deleted: true });
    expect((await api.call('GET', '/templates')).body).toEqual([]);
  }, 600_000);

  it('NICs, port forwards and disks of a stopped instance: list, add, remove; bad input changes nothing', async () => {
    const net = await api.call('POST', '/networks', { name: 'apidevnet', mode: 'isolated', subnet: '10.231.79.0/24' });
    expect(net.status, JSON.stringify(net.body)).toBe(201);
    try {
      expect((await api.call('POST', '/instances', { ...tinyVm('devvm'), diskSize: '64M' })).status).toBe(201);
      expect((await api.call('POST', '/volumes', { name: 'devvol', size: '16M' })).status).toBe(201);
      const before = (await api.call('GET', '/instances/devvm')).body;

      const bad: Array<[string, string, unknown, number, RegExp]> = [
        ['POST', '/instances/devvm/nics', { network: 'nonet' }, 404, /nonet/],
        ['POST', '/instances/devvm/nics', { network: 'apidevnet', ip: '192.168.1.5' }, 400, /192\.168\.1\.5/],
        ['DELETE', '/instances/devvm/nics/52:54:00:00:00:99', undefined, 404, /52:54:00:00:00:99/],
        ['POST', '/instances/devvm/ports', { ports: '99999:80' }, 400, /99999|port/],
        ['POST', '/instances/devvm/ports', { ports: '8080:80', address: 'not-an-address' }, 400, /address/],
        ['DELETE', '/instances/devvm/ports/8080', undefined, 404, /8080/],
        ['DELETE', '/instances/devvm/ports/x', undefined, 400, /ports/],
        ['POST', '/instances/devvm/disks', { volume: 'novol' }, 404, /novol/],
        ['DELETE', '/instances/devvm/disks/devvol', undefined, 4, /devvol/],
      ];
      for (const [method, url, body, status, message] of bad) {
        const r = await api.call(method, url, body);
        if (status === 4) expect(r.status, `${method} ${url} → ${JSON.stringify(r.body)}`).toBeGreaterThanOrEqual(400);
        else expect(r.status, `${method} ${url} ${JSON.stringify(body)} → ${JSON.stringify(r.body)}`).toBe(status);
        expect(r.status).toBeLessThan(500);
        expect(r.body.error.message, `${method} ${url}`).toMatch(message);
      }
      expect((await api.call('GET', '/instances/devvm')).body).toEqual(before);

      const nicsBefore = (await api.call('GET', '/instances/devvm/nics')).body;
      const attached = await api.call('POST', '/instances/devvm/nics', { network: 'apidevnet' });
      expect(attached.status, JSON.stringify(attached.body)).toBe(201);
      expect(attached.body).toMatchObject({ network: 'apidevnet', mac: expect.stringMatching(/^52:54:00:/), reserved: expect.stringMatching(/^10\.231\.79\./) });
      const nics = (await api.call('GET', '/instances/devvm/nics')).body;
      expect(nics).toHaveLength(nicsBefore.length + 1);
      expect((await api.call('GET', '/networks')).body.find((n: { name: string }) => n.name === 'apidevnet')).toMatchObject({ instances: ['devvm'] });
      expect((await api.call('GET', '/networks/apidevnet')).body).toMatchObject({ instances: ['devvm'], bridgeExists: true, nftTableExists: true });
      expect(nics).toContainEqual(expect.objectContaining({ mac: attached.body.mac, network: 'apidevnet' }));
      const detached = await api.call('DELETE', `/instances/devvm/nics/${attached.body.mac}`);
      expect(detached.status, JSON.stringify(detached.body)).toBe(200);
      expect(detached.body).toMatchObject({ mac: attached.body.mac });
      expect((await api.call('GET', '/instances/devvm/nics')).body).toEqual(nicsBefore);

      const added = await api.call('POST', '/instances/devvm/ports', { ports: '18080:80' });
      expect(added.status, JSON.stringify(added.body)).toBe(201);
      expect(added.body).toEqual({ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 18080, guestPort: 80 });
      expect((await api.call('POST', '/instances/devvm/ports', { ports: '18080:81' })).status).toBeGreaterThanOrEqual(400);
      expect((await api.call('GET', '/instances/devvm/ports')).body).toContainEqual({ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 18080, guestPort: 80, owner: 'user' });
      expect((await api.call('DELETE', '/instances/devvm/ports/18080%2Ftcp')).body).toMatchObject({ hostPort: 18080 });
      expect((await api.call('GET', '/instances/devvm/ports')).body.filter((f: { owner: string }) => f.owner === 'user')).toEqual([]);

      const disk = await api.call('POST', '/instances/devvm/disks', { volume: 'devvol' });
      expect(disk.status, JSON.stringify(disk.body)).toBe(201);
      expect(disk.body).toMatchObject({ instance: 'devvm', volume: 'devvol', live: false });
      expect((await api.call('GET', '/volumes/devvol')).body).toMatchObject({ attachedTo: 'devvm' });
      expect((await api.call('DELETE', '/volumes/devvol')).status).toBe(409);
      const undisk = await api.call('DELETE', '/instances/devvm/disks/devvol');
      expect(undisk.status, JSON.stringify(undisk.body)).toBe(200);
      expect((await api.call('GET', '/instances/devvm')).body.disks).toEqual(before.disks);
    } finally {
      await api.call('DELETE', '/instances/devvm?force=true').catch(() => {});
      await api.call('DELETE', '/volumes/devvol').catch(() => {});
      await api.call('DELETE', '/networks/apidevnet').catch(() => {});
    }
  }, 120_000);

  it('images: build from the cached debian-12 build is an operation with its phases', async () => {
    const started = Date.now();
    const r = await api.call('POST', '/images/build', { recipe: 'debian-12', name: 'built' });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    expect(r.body).toMatchObject({ kind: 'image-build', target: 'images/built' });
    const done = await waitOp(r.body.id);
    expect(done, JSON.stringify(done)).toMatchObject({ status: 'succeeded', result: { image: { name: 'built' }, cached: true } });
    expect(done.progress.entries.map((e: { phase: string }) => e.phase)).toContain('cached');
    console.log(`image build from the cache: ${Date.now() - started} ms`);
    expect((await api.call('DELETE', '/images/built')).status).toBe(200);
  }, 180_000);

  it('/metrics answers in the Prometheus text format', async () => {
    const r = await api.call('GET', '/metrics');
    expect(r.status).toBe(200);
    expect(String(r.headers['content-type'])).toMatch(/^text\/plain; version=0.0.4/);
    expect(r.body).toContain('# TYPE virtnode_host_cpus gauge');
  });

  it('web UI login links: refused without a TCP listener; a code works once for a session token', async () => {
    const without = await api.call('POST', '/ui-logins');
    expect(without.status).toBe(409);
    expect(without.body.error.message).toContain('this daemon does not listen on TCP');
    api.core.webUi = { url: 'https://127.0.0.1:8443', tlsFingerprint256: 'AB:CD' };
    try {
      const link = await api.call('POST', '/ui-logins');
      expect(link.status).toBe(201);
      expect(link.body).toMatchObject({ url: expect.stringMatching(/^https:\/\/127\.0\.0\.1:8443\/ui\/#login=[A-Za-z0-9_-]{43}$/), tlsFingerprint256: 'AB:CD' });
      const code = (link.body.url as string).split('#login=')[1];
      const session = await api.call('POST', '/ui-logins/redeem', { code });
      expect(session.status).toBe(201);
      expect(session.body).toMatchObject({ token: expect.stringMatching(/^vn_/), name: expect.stringMatching(/^ui-/) });
      expect((await api.call('POST', '/ui-logins/redeem', { code })).status).toBe(401);
      expect((await api.call('POST', '/ui-logins/redeem', { code, extra: 1 })).status).toBe(400);
      api.core.tokens.revoke(session.body.name);
    } finally {
      delete api.core.webUi;
    }
  });

  it('apply: plan, apply (an operation), diff and the JSON Schema; bad files refused at file:line:column with nothing made', async () => {
    const schema = await api.call('GET', '/schema/apply');
    expect(schema.status).toBe(200);
    expect(Object.keys(schema.body.definitions)).toEqual(['image', 'network', 'pool', 'volume', 'instance', 'template']);
    const stack = (text: string, extra: Record<string, unknown> = {}) => ({ files: [{ path: 'api.yaml', text }], stack: 'apistack', ...extra });
    const good = 'kind: volume\nname: apivol\nsize: 16M\n';

    const before = await snapshot();
    const bad = await api.call('POST', '/apply', stack('kind: volume\nname: apivol\nsize: [16M]\n'));
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('api.yaml:3:7: volume apivol: size: must be a string, not a list');
    expect((await api.call('POST', '/apply/plan', { files: [] })).status).toBe(400);
    expect(await snapshot()).toEqual(before);

    const plan = await api.call('POST', '/apply/plan', stack(good));
    expect(plan.status).toBe(200);
    expect(plan.body).toMatchObject({ stack: 'apistack', changed: true, applied: false, objects: [{ kind: 'volume', name: 'apivol', action: 'create' }] });
    const dry = await api.call('POST', '/apply', stack(good, { dryRun: true }));
    expect(dry.status).toBe(202);
    expect((await waitOp(dry.body.id)).result).toMatchObject({ applied: false, changed: true });
    expect((await api.call('GET', '/volumes/apivol')).status).toBe(404);

    const op = await api.call('POST', '/apply', stack(good));
    expect(op.status).toBe(202);
    expect(await waitOp(op.body.id)).toMatchObject({ status: 'succeeded', result: { applied: true, objects: [{ name: 'apivol', outcome: 'done' }] } });
    expect((await api.call('POST', '/apply/plan', stack(good))).body.changed).toBe(false);
    const diff = await api.call('POST', '/apply/diff', stack(good));
    expect(diff.body).toMatchObject({ changed: false, drift: [] });

    const pruned = await api.call('POST', '/apply', stack('# empty\n', { prune: true }));
    expect(await waitOp(pruned.body.id)).toMatchObject({ status: 'succeeded', result: { objects: [{ name: 'apivol', action: 'delete', outcome: 'done' }] } });
    expect((await api.call('GET', '/volumes/apivol')).status).toBe(404);
  });

  it('interop: an instance exported as libvirt XML, imported back (refused while its disk is in use), and the Ansible inventory', async () => {
    expect((await api.call('POST', '/instances', { name: 'xport', diskSize: '16M', tuning: { diskCache: 'writethrough', discard: true } })).status).toBe(201);
    try {
      const resized = await api.call('POST', '/instances/xport/resources', { cpus: 2, memory: '256M' });
      expect(resized.status).toBe(200);
      expect(resized.body).toMatchObject({ instance: { cpus: 2, memoryMiB: 256 }, effect: { cpus: 'next-boot', memory: 'next-boot' } });
      // A VM's disks are volumes: `disk` is for containers' layers.
      const grown = await api.call('POST', '/instances/xport/resources', { disk: '1G' });
      expect(grown.status).toBe(400);
      expect(grown.body.error.message).toContain('disk: xport is a VM');
      const exported = await api.call('GET', '/instances/xport/export?format=libvirt');
      expect(exported.status).toBe(200);
      expect(exported.body.document).toMatch(/<domain type="(kvm|qemu)">/);
      expect(exported.body.document).toContain('cache="writethrough"');
      expect((await api.call('GET', '/instances/xport/export?format=vmx')).status).toBe(400);
      const before = await snapshot();
      const again = await api.call('POST', '/libvirt/import', { xml: exported.body.document, name: 'xport2' });
      expect(again.status).toBe(409); // the same disk file, written by xport
      const bad = await api.call('POST', '/libvirt/import', { xml: '<domain><name>x</name>' });
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toMatch(/line \d+, column \d+/);
      expect(await snapshot()).toEqual(before);
      const inventory = await api.call('GET', '/inventory/ansible');
      expect(inventory.status).toBe(200);
      expect(inventory.body).toHaveProperty('_meta.hostvars');
    } finally {
      await api.call('DELETE', '/instances/xport?force=true');
    }
  });

  it('cluster routes on a standalone host: a status that says so, and clear refusals that change nothing', async () => {
    const status = await api.call('GET', '/cluster');
    expect(status.body).toEqual({ enabled: false, hosts: [], etcd: { external: false, members: [] } });
    const badAddress = await api.call('POST', '/cluster/init', { address: '127.0.0.1' });
    expect(badAddress.status).toBe(400);
    expect(badAddress.body.error.message).toContain('address: "127.0.0.1" is not an address other hosts can reach');
    const add = await api.call('POST', '/cluster/hosts', { host: 'h2' });
    expect(add.status).toBe(409);
    expect(add.body.error.message).toBe('this host is not in a cluster');
    const join = await api.call('POST', '/cluster/join', { token: 'nope', address: '10.1.2.3' });
    expect(join.status).toBe(400);
    expect(join.body.error.message).toContain('token: not a virtnode join token');
    expect((await api.call('DELETE', '/cluster/hosts/h2')).status).toBe(409);
    const evacuate = await api.call('POST', '/cluster/hosts/h2/evacuate');
    expect([evacuate.status, evacuate.body.error.message]).toEqual([409, 'evacuate: this host is not in a cluster']);
    const badHost = await api.call('POST', '/cluster/hosts/H_2/restore');
    expect([badHost.status, badHost.body.error.field]).toEqual([400, 'host']);
    const restore = await api.call('POST', '/cluster/hosts/h2/restore');
    expect([restore.status, restore.body.error.message]).toEqual([409, 'restore: this host is not in a cluster']);
    const rebalance = await api.call('POST', '/cluster/rebalance', { dryRun: true });
    expect([rebalance.status, rebalance.body.error.message]).toEqual([409, 'rebalance: this host is not in a cluster']);
    expect((await api.call('POST', '/cluster/rebalance', { threshold: 0 })).status).toBe(400);
    const recover = await api.call('POST', '/cluster/recover');
    expect([recover.status, recover.body.error.message]).toEqual([409, 'this host is not in a cluster']);
    expect((await api.call('GET', '/cluster')).body).toEqual(status.body);
    expect(readdirSync(home)).not.toContain('cluster');
  });

  it('every route of the API was exercised by this file', () => {
    const routes = Object.entries(api.openapi().paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`));
    const missing = routes.filter((r) => !api.exercised.has(r) && r !== 'GET /events');
    expect(missing).toEqual([]);
  });
});
