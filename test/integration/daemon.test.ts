import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/lib/proc.ts';
import { freeLoopbackPort } from '../../src/lib/ports.ts';
import { qemuPidsUnder, tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { eventually, type RunningDaemon, startDaemon } from '../helpers/daemon.ts';
import { createQcow2 } from '../helpers/http-server.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

function rawHttps(port: number, path: string, options: { ca: string; token?: string }): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path, ca: options.ca, servername: 'localhost', headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Volatile parts of CLI output (uuids, pids, MACs, dates, the instance's own name) made comparable. */
function normalize(text: string, name: string): string {
  return text
    .replaceAll(name, 'NAME')
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, 'UUID')
    .replace(/52:54:00(:[0-9a-f]{2}){3}/g, 'MAC')
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, 'DATE')
    .replace(/pid \d+/g, 'pid N')
    .replace(/"pid": \d+/g, '"pid": N')
    .replace(/^pid: \d+$/gm, 'pid: N')
    .replace(/127\.0\.0\.1(:| port )\d+/g, '127.0.0.1$1PORT')
    .replace(/SHA256:[A-Za-z0-9+/]+/g, 'FP')
    .replace(/-p \d+/g, '-p PORT')
    .replace(/i-UUID/g, 'IID');
}

describe('virtnode daemon as a process: socket, TLS and tokens, events, the CLI through it', () => {
  const { home, cleanup } = tempHome('virtnode-daemon-');
  let daemon: RunningDaemon | undefined;
  let port = 0;
  const cert = join(home, 'cert.pem');
  const key = join(home, 'key.pem');

  beforeAll(async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    port = await freeLoopbackPort();
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    cleanup();
  });

  it('refuses half a TLS configuration, and bad options, before doing anything', async () => {
    const halfTls = await virtnode(home, ['daemon', '--listen', `127.0.0.1:${port}`, '--tls-key', key]);
    expect(halfTls.code).toBe(2);
    expect(halfTls.stderr).toContain('--tls-cert: give both --tls-cert and --tls-key, or neither');
    const badGroup = await virtnode(home, ['daemon', '--group', 'no-such-group-here']);
    expect(badGroup.code).toBe(2);
    expect(badGroup.stderr).toContain('group "no-such-group-here" does not exist');
    const badListen = await virtnode(home, ['daemon', '--listen', 'nowhere', '--tls-cert', cert, '--tls-key', key]);
    expect(badListen.stderr).toContain('"nowhere" is not HOST:PORT');
  });

  it('listens on a UNIX socket of mode 0660 with the given group, and on TCP only with TLS and a valid token', async () => {
    daemon = await startDaemon(home, ['--group', 'daemon', '--listen', `127.0.0.1:${port}`, '--tls-cert', cert, '--tls-key', key]);
    const st = statSync(daemon.socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
    expect(st.gid).toBe(1);

    const ca = readFileSync(cert, 'utf8');
    const none = await rawHttps(port, '/instances', { ca });
    expect(none.status).toBe(401);
    expect(none.body.error).toMatchObject({ code: 'UNAUTHORIZED', message: 'this API needs a bearer token' });
    expect((await rawHttps(port, '/instances', { ca, token: 'vn_not-a-real-token' })).status).toBe(401);

    const created = await virtnode(home, ['token', 'create', 'ci']);
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^vn_[A-Za-z0-9_-]{43}$/);
    const store = new DatabaseSync(join(home, 'virtnode.db'), { readOnly: true });
    const db = (store.prepare('SELECT sha256 FROM api_tokens').all() as Array<{ sha256: string }>).map((r) => r.sha256).join(',');
    store.close();
    expect(db).toMatch(/^[0-9a-f]{64}$/); // only the hash is kept
    expect(db).not.toContain(token);
    expect(statSync(join(home, 'virtnode.db')).mode & 0o777).toBe(0o600);

    const ok = await rawHttps(port, '/instances', { ca, token });
    expect(ok).toEqual({ status: 200, body: [] });
    const metricsWithout = await rawHttps(port, '/openapi.json', { ca });
    expect(metricsWithout.status).toBe(401); // every route, documents included

    // Plain HTTP on the TLS port gets nowhere.
    const plain = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/instances', headers: { authorization: `Bearer ${token}` } }, (res) => resolve(`status ${res.statusCode}`));
      req.on('error', (e) => resolve(`error ${e.message}`));
      req.end();
    });
    expect(plain).not.toBe('status 200');

    // The CLI remotely, then after revocation.
    const env = { VIRTNODE_TOKEN: token, VIRTNODE_CA: cert, VIRTNODE_HOME: join(home, 'elsewhere') };
    const remote = await virtnode(home, ['--remote', `https://localhost:${port}`, 'list', '--format', 'json'], { env });
    expect(remote.code, remote.stderr).toBe(0);
    expect(JSON.parse(remote.stdout)).toEqual([]);
    // Commands that work on this host itself are refused over --remote, naming why, before anything runs.
    for (const args of [['shell', 'x'], ['exec', 'x', '--', 'true'], ['reconcile'], ['token', 'create', 'y']]) {
      const refused = await virtnode(home, ['--remote', `https://localhost:${port}`, ...args], { env });
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toContain(`error: --remote: \`virtnode ${args.slice(0, args[0] === 'token' ? 2 : 1).join(' ')}\` cannot go to the daemon at https://localhost:${port}`);
    }
    // Streams opened with the token: the events WebSocket with the bearer header, and one with a ticket it asked for.
    const opened = (url: string, headers: Record<string, string> = {}) =>
      new Promise<{ ws: WebSocket; closed: Promise<number> }>((resolve, reject) => {
        const ws = new WebSocket(url, { ca, headers });
        const closed = new Promise<number>((done) => ws.once('close', (code) => done(code)));
        ws.once('open', () => resolve({ ws, closed }));
        ws.once('error', reject);
      });
    const bearerStream = await opened(`wss://localhost:${port}/events`, { authorization: `Bearer ${token}` });
    const ticket = await new Promise<{ url: string }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/events/tickets', method: 'POST', ca, servername: 'localhost', headers: { authorization: `Bearer ${token}` } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(JSON.parse(text)));
      });
      req.on('error', reject);
      req.end();
    });
    const ticketStream = await opened(`wss://localhost:${port}${ticket.url}`);
    const listed = await virtnode(home, ['token', 'ls', '--format', 'json']);
    expect(JSON.parse(listed.stdout)).toEqual([{ name: 'ci', scope: 'admin', createdAt: expect.any(String), expiresAt: null, lastUsedAt: expect.any(String) }]);
    expect((await virtnode(home, ['token', 'revoke', 'ci'])).code).toBe(0);
    // Revoked by the CLI, in the database: the daemon closes what the token opened within its check interval.
    const deadline = (p: Promise<number>) => Promise.race([p, new Promise<string>((resolve) => setTimeout(() => resolve('still open after 6 s'), 6_000))]);
    expect(await deadline(bearerStream.closed)).toBe(4001);
    expect(await deadline(ticketStream.closed)).toBe(4001);
    const revoked = await virtnode(home, ['--remote', `https://localhost:${port}`, 'list'], { env });
    expect(revoked.code).toBe(13);
    expect(revoked.stderr).toContain('error: the bearer token is not valid (unknown, revoked or expired)');
    expect((await virtnode(home, ['token', 'revoke', 'ci'])).code).toBe(3);
  });

  it('sends instance state changes over the events WebSocket when an instance starts', async () => {
    const ws = new WebSocket(`ws+unix://${daemon!.socket}:/events`);
    const messages: Array<{ type: string; name?: string; state?: string }> = [];
    ws.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString())));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const created = await virtnode(home, ['create', 'evt', ...bootArgs, '--start']);
    expect(created.code, created.stderr).toBe(0);
    await eventually(() => (messages.some((m) => m.type === 'instance' && m.name === 'evt' && m.state === 'running') ? true : undefined), 10_000, 'a running event');
    expect(messages[0]).toMatchObject({ type: 'hello' });
    ws.close();
    expect((await virtnode(home, ['delete', '--force', 'evt'])).code).toBe(0);
  });

  it('the CLI gives the same output and errors through the daemon as without it', async () => {
    const requestsTo = (path: string) => daemon!.logLines().filter((l) => (l['req'] as { url?: string } | undefined)?.url === path).length;
    const run = async (mode: 'daemon' | 'local', args: string[]) => {
      const r = await virtnode(home, args, { env: mode === 'local' ? { VIRTNODE_NO_DAEMON: '1' } : {} });
      return { code: r.code, stdout: r.stdout, stderr: r.stderr };
    };
    const transcript = async (mode: 'daemon' | 'local') => {
      const name = mode === 'daemon' ? 'cmp-dmn' : 'cmp-loc';
      const steps = [
        ['create', name, ...bootArgs],
        ['list'],
        ['info', name],
        ['info', name, '--format', 'yaml'],
        ['stop', name],
        ['start', name],
        ['list', '--format', 'json'],
        ['stop', name, '--timeout', '30'],
        ['delete', name],
        // the daemon's and the in-process create both record autostart and the restart policy
        ['create', name, ...bootArgs, '--autostart', '--restart', 'on-failure'],
        ['info', name],
        ['info', name, '--format', 'json'],
        ['delete', name],
        ['create', 'x', '--restart', 'sometimes', '--disk-size', '1G'],
        ['info', 'nope'],
        ['create', 'Bad_Name', '--disk-size', '1G'],
        ['create', 'x', '--memory', 'lots', '--disk-size', '1G'],
        ['start', 'nope'],
        ['delete', 'nope'],
        ['set', 'nope', 'autostart=true'],
        ['launch', 'no-such-image', '--name', 'l1'],
        ['set', 'nope', 'cpus=2', 'memory=1G'],
        ['set', 'nope', 'cpus=many'],
      ];
      const out: Array<{ code: number | null; stdout: string; stderr: string }> = [];
      for (const step of steps) {
        if (step[0] === 'stop' && out.length === 4) {
          // the guest must be up to see the ACPI button: wait until it printed its marker (same in both modes)
          const started = await run(mode, ['start', name]);
          out.push({ code: started.code, stdout: normalize(started.stdout, name), stderr: normalize(started.stderr, name) });
          await waitForText(join(home, 'instances', name, 'console.log'), TEST_GUEST_READY_MARKER, 60_000);
        }
        const r = await run(mode, step);
        out.push({ code: r.code, stdout: normalize(r.stdout, name), stderr: normalize(r.stderr, name) });
      }
      return out;
    };
    const viaDaemon = await transcript('daemon');
    const local = await transcript('local');
    expect(viaDaemon).toEqual(local);
    expect(viaDaemon.map((r) => r.code)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 2, 2, 3, 3, 3, 3, 3, 2]);
    const policyInfo = viaDaemon[11]!.stdout;
    expect(policyInfo).toMatch(/Autostart:\s+yes/);
    expect(policyInfo).toMatch(/Restart:\s+on-failure/);
    expect(JSON.parse(viaDaemon[12]!.stdout)).toMatchObject({ autostart: true, restartPolicy: 'on-failure' });
    expect(viaDaemon[14]!.stderr).toContain('--restart');
    // and the daemon really did the work in the first run, not in the second
    expect(requestsTo('/instances/cmp-dmn/stop')).toBe(2);
    expect(requestsTo('/instances/cmp-loc/stop')).toBe(0);
  }, 240_000);

  it('launch through the daemon prints the same phases and summary as a local launch', async () => {
    await createQcow2(join(home, 'blank.qcow2'), 0x33);
    expect((await virtnode(home, ['image', 'import', join(home, 'blank.qcow2'), '--name', 'blank'])).code).toBe(0);
    const results = [];
    for (const mode of ['daemon', 'local'] as const) {
      const name = mode === 'daemon' ? 'lau-dmn' : 'lau-loc';
      const r = await virtnode(home, ['launch', 'blank', '--name', name, '--memory', '128M', '--seed', 'http', '--no-wait'], { env: mode === 'local' ? { VIRTNODE_NO_DAEMON: '1' } : {} });
      expect(r.code, r.stderr).toBe(0);
      results.push({ stdout: normalize(r.stdout, name), phases: normalize(r.stderr, name).replace(/\[\s*[\d.]+ s\]/g, '[T]').replace(/\/tmp\/virtnode-daemon-\w+/g, 'HOME') });
      expect((await virtnode(home, ['delete', '--force', name])).code).toBe(0);
    }
    expect(results[0]).toEqual(results[1]);
    expect(results[0]!.phases).toContain('booting');
  });

  it('SIGTERM stops the daemon and leaves guests running; --stop-guests-on-shutdown powers them off', async () => {
    expect((await virtnode(home, ['create', 'stay', ...bootArgs, '--start'])).code).toBe(0);
    await waitForText(join(home, 'instances', 'stay', 'console.log'), TEST_GUEST_READY_MARKER, 60_000);
    const [pid] = qemuPidsUnder(home);
    expect(await daemon!.stop('SIGTERM')).toBe(0);
    expect(qemuPidsUnder(home)).toEqual([pid]);
    daemon = await startDaemon(home, ['--stop-guests-on-shutdown', '--shutdown-timeout', '30']);
    const list = await daemon.api.request<Array<{ name: string; state: string; pid: number }>>('GET', '/instances');
    expect(list.body).toEqual([expect.objectContaining({ name: 'stay', state: 'running', pid })]);
    expect(await daemon.stop('SIGTERM')).toBe(0);
    expect(qemuPidsUnder(home)).toEqual([]);
    expect(isAlive({ pid: pid!, start: '' })).toBe(false);
    const after = await virtnode(home, ['info', 'stay', '--format', 'json']);
    expect(JSON.parse(after.stdout)).toMatchObject({ state: 'stopped', reason: 'guest powered off (ACPI shutdown)' });
    daemon = undefined;
    expect((await virtnode(home, ['delete', 'stay'])).code).toBe(0);
  }, 120_000);
});
