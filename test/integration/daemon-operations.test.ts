import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { OperationView } from '../../src/api/schemas.ts';
import { tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { eventually, type RunningDaemon, startDaemon } from '../helpers/daemon.ts';
import { createQcow2, TestHttpServer } from '../helpers/http-server.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const tinyVm = (name: string) => ({ name, memory: '128M', kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline });

interface View {
  name: string;
  state: string;
  reason?: string;
  pid?: number;
  autostart?: boolean;
}

/** Types a line into the guest's serial console (its shell is there). */
function typeOnSerial(home: string, name: string, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(join(home, 'instances', name, 'serial.sock'));
    socket.once('error', reject);
    socket.once('connect', () => socket.end(`${line}\n`, () => setTimeout(resolve, 200)));
  });
}

describe('daemon operations: kept in SQLite across restarts, interrupted ones failed after kill -9, cancel, CLI; the instance list is never stale', () => {
  const { home, cleanup } = tempHome('virtnode-ops-');
  let daemon: RunningDaemon | undefined;
  let http: TestHttpServer | undefined;
  afterAll(async () => {
    await daemon?.api.request('DELETE', '/instances/opvm?force=true').catch(() => {});
    await daemon?.stop('SIGTERM');
    await http?.close();
    cleanup();
  });

  const call = async <T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    try {
      return await daemon!.api.request<T>(method, path, body);
    } catch (e) {
      // The client turns 4xx/5xx into errors: give the test the status and the error shape back.
      const err = e as { code: string; message: string; hint?: string };
      const status = { INVALID: 400, NOT_FOUND: 404, INVALID_STATE: 409, CONFLICT: 409 }[err.code] ?? 500;
      return { status, body: { error: { code: err.code, message: err.message } } as T };
    }
  };
  const operation = async (id: string) => (await call<OperationView>('GET', `/operations/${id}`)).body;
  const wait = async (id: string) => (await call<OperationView>('GET', `/operations/${id}?wait=120`)).body;
  const instance = async (name: string) => (await call<View>('GET', `/instances/${name}`)).body;
  const listed = async (name: string) => (await call<View[]>('GET', '/instances')).body.find((i) => i.name === name);

  let imported: OperationView;
  let interruptedId: string;
  let pidBefore: number;
  const consoleLog = join(home, 'instances', 'opvm', 'console.log');

  it('a finished operation is in GET /operations/{id} and the list (newest first, ?status, ?limit); its log lines carry its id; bad ids are 400/404 with the error shape', async () => {
    daemon = await startDaemon(home);
    const qcow2 = join(home, 'blank.qcow2');
    await createQcow2(qcow2, 0x33);
    const started = await call<OperationView>('POST', '/images/import', { file: qcow2, name: 'blank' });
    expect(started.status).toBe(202);
    imported = await wait(started.body.id);
    expect(imported).toMatchObject({ status: 'succeeded', kind: 'image-import', result: { image: { name: 'blank' } }, finishedAt: expect.any(String) });

    const failing = await call<OperationView>('POST', '/images/import', { file: join(home, 'missing.qcow2'), name: 'missing' });
    const failed = failing.status === 202 ? await wait(failing.body.id) : undefined;
    const list = (await call<OperationView[]>('GET', '/operations')).body;
    expect(list[list.length - 1]!.id).toBe(imported.id);
    if (failed !== undefined) {
      expect(failed.status).toBe('failed');
      expect(list[0]!.id).toBe(failed.id); // newest first
      expect((await call<OperationView[]>('GET', '/operations?status=failed')).body.map((o) => o.id)).toEqual([failed.id]);
    }
    expect((await call<OperationView[]>('GET', '/operations?status=succeeded')).body.map((o) => o.id)).toEqual([imported.id]);
    expect((await call<OperationView[]>('GET', '/operations?limit=1')).body).toHaveLength(1);

    const bad: Array<[string, string, number, RegExp]> = [
      ['GET', '/operations/not-an-id', 400, /id/],
      ['GET', '/operations/00000000-0000-0000-0000-000000000000', 404, /operation 00000000-0000-0000-0000-000000000000 does not exist/],
      ['GET', '/operations/00000000-0000-0000-0000-000000000000/wait?timeout=1', 404, /does not exist/],
      ['DELETE', '/operations/00000000-0000-0000-0000-000000000000', 404, /does not exist/],
      ['DELETE', `/operations/${imported.id}`, 409, /already succeeded/],
      ['GET', '/operations?status=done', 400, /status/],
      ['GET', '/operations?limit=0', 400, /limit/],
      ['GET', '/operations?limit=5000', 400, /limit/],
      ['GET', '/operations?color=red', 400, /unknown field "color"/],
    ];
    for (const [method, path, status, message] of bad) {
      const r = await call(method, path);
      expect(r.status, `${method} ${path} → ${JSON.stringify(r.body)}`).toBe(status);
      expect(r.body.error.message, `${method} ${path}`).toMatch(message);
    }

    // Every line the operation logged names it: its start, its end, and the request that started it.
    const lines = await eventually(() => {
      const mine = daemon!.logLines().filter((l) => l['operation'] === imported.id);
      return mine.some((l) => l['msg'] === 'operation finished') && mine.some((l) => l['msg'] === 'request') ? mine : undefined;
    }, 5_000, 'the log lines of the import');
    expect(lines.map((l) => l['msg'])).toEqual(expect.arrayContaining(['operation started', 'operation finished', 'request']));
    expect(lines.find((l) => l['msg'] === 'request')).toMatchObject({ status: 202, req: { method: 'POST', url: '/images/import' } });
    // ...and the supervisor's own lines do not carry it.
    expect(daemon.logLines().filter((l) => l['component'] === 'supervisor' && l['operation'] !== undefined)).toEqual([]);
  }, 60_000);

  it('cancel: a pull from a server that never answers ends as cancelled, and stays so', async () => {
    http = await TestHttpServer.start();
    http.serve('/hang.qcow2', { body: Buffer.alloc(10), hang: true });
    const hanging = await call<OperationView>('POST', '/images/pull', { url: http.url('/hang.qcow2'), name: 'hang' });
    expect(hanging.status).toBe(202);
    expect((await operation(hanging.body.id)).status).toBe('running');
    const cancelled = await virtnode(home, ['operation', 'cancel', hanging.body.id]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toContain(`Cancelling operation ${hanging.body.id} (image-pull images/hang)`);
    expect(await wait(hanging.body.id)).toMatchObject({ status: 'cancelled', error: { code: 'TIMEOUT', message: expect.stringMatching(/^download of .*hang.qcow2 was interrupted after/) } });
    const again = await virtnode(home, ['op', 'cancel', hanging.body.id]);
    expect(again.code).toBe(5);
    expect(again.stderr).toContain('is already cancelled');
  }, 60_000);

  it('the instance list is never stale after a lifecycle call returned, even while other clients keep reading it', async () => {
    let reading = true;
    const readers = Array.from({ length: 4 }, async () => {
      while (reading) await call('GET', '/instances');
    });
    try {
      const created = await call<View>('POST', '/instances', { ...tinyVm('opvm'), start: true });
      expect(created.status).toBe(201);
      expect(await listed('opvm')).toMatchObject({ state: 'running', pid: created.body.pid });
      await waitForText(consoleLog, TEST_GUEST_READY_MARKER, 90_000);
      for (let round = 0; round < 3; round++) {
        expect((await call<View>('POST', '/instances/opvm/pause')).body.state).toBe('paused');
        expect((await listed('opvm'))?.state).toBe('paused');
        expect((await call<View>('POST', '/instances/opvm/resume')).body.state).toBe('running');
        expect((await listed('opvm'))?.state).toBe('running');
      }
      expect((await call<View>('PATCH', '/instances/opvm', { autostart: true })).body.autostart).toBe(true);
      expect((await listed('opvm'))?.autostart).toBe(true);
      expect((await call('POST', '/instances', tinyVm('brief'))).status).toBe(201);
      expect((await listed('brief'))?.state).toBe('defined');
      expect((await call('DELETE', '/instances/brief')).status).toBe(200);
      expect(await listed('brief')).toBeUndefined();
      // A change made without the daemon (another process, another database connection) shows at once too.
      expect((await virtnode(home, ['create', 'outside', '--memory', '128M', '--disk-size', '16M'], { env: { VIRTNODE_NO_DAEMON: '1' } })).code).toBe(0);
      expect((await listed('outside'))?.state).toBe('defined');
      expect((await virtnode(home, ['delete', 'outside'], { env: { VIRTNODE_NO_DAEMON: '1' } })).code).toBe(0);
      expect(await listed('outside')).toBeUndefined();
    } finally {
      reading = false;
      await Promise.all(readers);
    }
  }, 150_000);

  it('an operation running when the daemon is killed -9 is failed (INTERRUPTED) by the next daemon, after reconcile put its instance back in a consistent state', async () => {
    // The guest ignores the ACPI power button from now on, so the stop waits out its long timeout.
    await typeOnSerial(home, 'opvm', 'killall acpid; echo ACPID-$((40+2))-GONE');
    await waitForText(consoleLog, 'ACPID-42-GONE', 20_000);
    pidBefore = (await instance('opvm')).pid!;
    const stop = await call<OperationView>('POST', '/instances/opvm/stop', { timeoutSeconds: 600 });
    expect(stop.status).toBe(202);
    interruptedId = stop.body.id;
    await eventually(async () => ((await instance('opvm')).state === 'stopping' ? true : undefined), 10_000, 'opvm to be stopping');
    expect((await virtnode(home, ['op', 'ls', '--status', 'running'])).stdout).toContain(interruptedId);

    expect(await daemon!.stop('SIGKILL')).toBe(null);
    // No daemon: the CLI reads the table (the socket left behind answers nobody), and knows the daemon is gone.
    const local = await virtnode(home, ['operation', 'ls', '--format', 'json']);
    expect(local.code, local.stderr).toBe(0);
    expect(JSON.parse(local.stdout)).toContainEqual(expect.objectContaining({ id: interruptedId, status: 'running', kind: 'stop' }));
    const localWait = await virtnode(home, ['operation', 'wait', interruptedId]);
    expect(localWait.code).toBe(14);
    expect(localWait.stderr).toMatch(/was running in a daemon that stopped/);

    daemon = await startDaemon(home);
    const failed = await operation(interruptedId);
    expect(failed).toMatchObject({ status: 'failed', kind: 'stop', target: 'instances/opvm', finishedAt: expect.any(String), error: { code: 'INTERRUPTED' } });
    expect(failed.error!.message).toMatch(/the daemon stopped while this operation ran .*reconcile repaired the state of instances\/opvm/);
    // Reconcile adopted the guest (its QEMU never stopped): one state everywhere, same QEMU.
    const after = await instance('opvm');
    expect(after).toMatchObject({ state: 'running', pid: pidBefore, reason: expect.stringMatching(/adopted after an interrupted stop/) });
    expect(await listed('opvm')).toMatchObject({ state: 'running', pid: pidBefore });
    expect((await virtnode(home, ['info', 'opvm', '--format', 'json'])).stdout).toContain('"state": "running"');
    expect(daemon.logLines().find((l) => l['msg'] === 'operation interrupted by a daemon stop: marked failed')).toMatchObject({ operation: interruptedId });

    // wait answers at once for an operation that ended before this daemon started; the CLI exits with its code.
    expect((await call<OperationView>('GET', `/operations/${interruptedId}/wait?timeout=30`)).body.status).toBe('failed');
    const cliWait = await virtnode(home, ['op', 'wait', interruptedId]);
    expect(cliWait.code).toBe(14);
    expect(cliWait.stdout).toMatch(/Status:\s+failed/);
    expect(cliWait.stderr).toMatch(/error: the daemon stopped while this operation ran/);
    expect((await call('DELETE', `/operations/${interruptedId}`)).status).toBe(409);
  }, 120_000);

  it('a finished operation is still there with its result after a daemon restart; the CLI shows it', async () => {
    expect(await operation(imported.id)).toEqual(imported);
    expect((await call<OperationView>('GET', `/operations/${imported.id}/wait?timeout=5`)).body).toEqual(imported);
    const ids = (await call<OperationView[]>('GET', '/operations')).body.map((o) => o.id);
    expect(ids[0]).toBe(interruptedId);
    expect(ids).toContain(imported.id);
    const info = await virtnode(home, ['operation', 'info', imported.id]);
    expect(info.code, info.stderr).toBe(0);
    expect(info.stdout).toMatch(/Status:\s+succeeded/);
    expect(info.stdout).toMatch(/Kind:\s+image-import/);
    const table = await virtnode(home, ['op', 'ls']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+KIND\s+TARGET\s+STATUS/);
    expect(table.stdout).toContain(imported.id);
    const bad = await virtnode(home, ['op', 'info', '../../etc/passwd']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('is not an operation id');

    // A stop now works and ends the guest (forced: it ignores ACPI); the instance list follows at once.
    const stop = await call<OperationView>('POST', '/instances/opvm/stop', { force: true });
    expect(await wait(stop.body.id)).toMatchObject({ status: 'succeeded', result: { method: 'forced' } });
    expect((await listed('opvm'))?.state).toBe('stopped');
  }, 60_000);

  it('SIGTERM cancels what runs and says why; the next daemon shows it so', async () => {
    const hanging = await call<OperationView>('POST', '/images/pull', { url: http!.url('/hang.qcow2'), name: 'hang2' });
    expect(hanging.status).toBe(202);
    expect(await daemon!.stop('SIGTERM')).toBe(0);
    daemon = await startDaemon(home);
    expect(await operation(hanging.body.id)).toMatchObject({ status: 'cancelled', error: { code: 'INVALID_STATE', message: expect.stringMatching(/cancelled because the daemon stopped/) } });
    expect(daemon.logLines().some((l) => l['msg'] === 'operation interrupted by a daemon stop: marked failed')).toBe(false);
  }, 60_000);
});
