import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeQmpServer, GREETING, type FakeQmpClient, type FakeQmpCommand, type FakeQmpHandler } from '../../test/helpers/fake-qmp-server.ts';
import { QmpCommandError, QmpConnection, type QmpEvent } from './connection.ts';
import { LineFramer } from './framing.ts';

const servers: FakeQmpServer[] = [];
const connections: QmpConnection[] = [];
const dirs: string[] = [];

async function serve(options: Parameters<typeof FakeQmpServer.start>[0] = {}): Promise<FakeQmpServer> {
  const server = await FakeQmpServer.start(options);
  servers.push(server);
  return server;
}

async function open(path: string, timeoutMs = 2_000): Promise<QmpConnection> {
  const connection = await QmpConnection.connect(path, { timeoutMs });
  connections.push(connection);
  return connection;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-qmp-test-'));
  dirs.push(dir);
  return dir;
}

/** Answers qmp_capabilities, hands every other command to `rest`. */
function afterCapabilities(rest: FakeQmpHandler): FakeQmpHandler {
  return (command, client) => (command.execute === 'qmp_capabilities' ? client.reply(command) : rest(command, client));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

function countResources(kind: string): number {
  return process.getActiveResourcesInfo().filter((r) => r === kind).length;
}

afterEach(async () => {
  for (const c of connections.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('LineFramer', () => {
  it('joins split frames, splits joined ones, tolerates CRLF and blank lines', () => {
    const f = new LineFramer();
    expect(f.push('{"a":')).toEqual([]);
    expect(f.pendingBytes).toBe(5);
    expect(f.push('1}\r\n{"b":2}\n{"c"')).toEqual(['{"a":1}', '{"b":2}']);
    expect(f.push(':3}\r\n\r\n\n')).toEqual(['{"c":3}']);
    expect(f.pendingBytes).toBe(0);
  });

  it('decodes a multi-byte UTF-8 character split across chunks', () => {
    const f = new LineFramer();
    const bytes = Buffer.from('{"desc":"é€"}\n');
    const lines = [...bytes].flatMap((b) => f.push(Buffer.from([b])) ?? ['<overflow>']);
    expect(lines).toEqual(['{"desc":"é€"}']);
  });

  it('reports an endless line instead of buffering without bound', () => {
    const f = new LineFramer({ maxLineBytes: 8 });
    expect(f.push('12345')).toEqual([]);
    expect(f.push('6789')).toBeUndefined();
  });
});

describe('QmpConnection: connecting', () => {
  it('reads the greeting, sends qmp_capabilities first and exposes the version', async () => {
    const server = await serve();
    const qmp = await open(server.path);
    expect(qmp.greeting.version.qemu).toEqual({ major: 7, minor: 2, micro: 0 });
    expect(qmp.greeting.capabilities).toEqual(['oob']);
    expect(server.commandNames).toEqual(['qmp_capabilities']);
    expect(server.received[0]).toMatchObject({ execute: 'qmp_capabilities', id: expect.any(String) });
    expect(server.received[0]).not.toHaveProperty('arguments');
  });

  it('survives a greeting and replies delivered byte by byte', async () => {
    const server = await serve({
      greeting: null,
      handler: (command, client) => client.sendSplit(`${JSON.stringify({ return: { status: 'running', running: true, n: command.execute }, id: command.id })}\r\n`),
    });
    const connecting = open(server.path);
    await (await server.client()).sendSplit(GREETING);
    const qmp = await connecting;
    expect(qmp.greeting.version.qemu.major).toBe(7);
    expect(await qmp.execute('query-status')).toEqual({ status: 'running', running: true, n: 'query-status' });
  });

  it('waits for a socket that does not exist yet (QEMU still starting)', async () => {
    const path = join(tempDir(), 'qmp.sock');
    const started = Date.now();
    const connecting = open(path, 3_000);
    await delay(80);
    await serve({ path });
    const qmp = await connecting;
    expect(Date.now() - started).toBeGreaterThanOrEqual(80);
    expect(qmp.greeting.version.qemu.major).toBe(7);
  });

  it('retries a socket that refuses (stale socket file of a dead QEMU) until one listens', async () => {
    const path = join(tempDir(), 'qmp.sock');
    // A process that listens and is SIGKILLed leaves its socket file behind: connecting to it is ECONNREFUSED.
    const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', () => reject(new Error('listener child exited early')));
      });
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve)));
    expect(existsSync(path)).toBe(true);
    const refused = await rejection(QmpConnection.connect(path, { timeoutMs: 60 }));
    expect(refused).toMatchObject({ code: 'QMP_TIMEOUT', message: expect.stringContaining('connection refused') });

    const connecting = open(path, 3_000);
    await delay(50);
    rmSync(path);
    await serve({ path });
    expect((await connecting).greeting.version.qemu.major).toBe(7);
  });

  it('gives up at the deadline with QMP_TIMEOUT when the socket never appears', async () => {
    const path = join(tempDir(), 'never.sock');
    const started = Date.now();
    const error = await rejection(QmpConnection.connect(path, { timeoutMs: 150 }));
    const elapsed = Date.now() - started;
    expect(error).toMatchObject({ code: 'QMP_TIMEOUT', message: expect.stringContaining(path), hint: expect.stringContaining('QEMU running') });
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(1_000);
  });

  it('stops retrying at once when the signal aborts', async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 50);
    const error = await rejection(QmpConnection.connect(join(tempDir(), 'never.sock'), { timeoutMs: 10_000, signal: controller.signal }));
    expect(error).toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('cancelled') });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('a monitor that accepts but never greets is BUSY (another client holds it), not QMP_TIMEOUT', async () => {
    const server = await serve({ greeting: null });
    const started = Date.now();
    const error = await rejection(QmpConnection.connect(server.path, { timeoutMs: 200 }));
    expect(error).toMatchObject({ code: 'BUSY', message: `QMP monitor at ${server.path} did not greet: another client may hold it` });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(Date.now() - started).toBeLessThan(1_000);
    await (await server.client()).closed; // and it let go of the connection
  });

  it('garbage instead of a greeting is QMP_PROTOCOL', async () => {
    const server = await serve({ greeting: 'HELLO\r\n' });
    expect(await rejection(open(server.path))).toMatchObject({ code: 'QMP_PROTOCOL', message: expect.stringContaining('HELLO') });
    await (await server.client()).closed;
  });

  it('garbage in the same chunk right after the greeting fails connect cleanly', async () => {
    const server = await serve({ greeting: `${GREETING}not json at all\r\n` });
    expect(await rejection(open(server.path))).toMatchObject({ code: 'QMP_PROTOCOL', message: expect.stringContaining('not json at all') });
    await (await server.client()).closed;
  });

  it('a socket that closes before greeting is QMP_DISCONNECTED', async () => {
    const server = await serve({ greeting: null });
    const connecting = open(server.path);
    (await server.client()).drop();
    expect(await rejection(connecting)).toMatchObject({ code: 'QMP_DISCONNECTED' });
  });

  it('a refused qmp_capabilities fails connect with QMP_COMMAND', async () => {
    const server = await serve({ handler: (command, client) => client.error(command, 'CommandNotFound', 'Capabilities negotiation is already complete') });
    expect(await rejection(open(server.path))).toMatchObject({ code: 'QMP_COMMAND', qmpClass: 'CommandNotFound' });
  });
});

describe('QmpConnection: commands', () => {
  it('matches replies by id, out of order, with events in between and several messages per chunk', async () => {
    const held: FakeQmpCommand[] = [];
    const server = await serve({
      handler: afterCapabilities((command, client) => {
        held.push(command);
        if (held.length < 3) return;
        // answer 3, 1, 2 in one write, with events between
        client.send(
          [
            JSON.stringify({ return: { which: held[2]!.execute }, id: held[2]!.id }),
            JSON.stringify({ event: 'STOP', timestamp: { seconds: 1, microseconds: 0 } }),
            JSON.stringify({ return: { which: held[0]!.execute }, id: held[0]!.id }),
            JSON.stringify({ event: 'RESUME', timestamp: { seconds: 2, microseconds: 0 } }),
            JSON.stringify({ return: { which: held[1]!.execute }, id: held[1]!.id }),
            '',
          ].join('\r\n'),
        );
      }),
    });
    const qmp = await open(server.path);
    const events: string[] = [];
    qmp.onEvent((e) => events.push(e.event));
    const replies = await Promise.all([qmp.execute('a'), qmp.execute('b'), qmp.execute('c')]);
    expect(replies).toEqual([{ which: 'a' }, { which: 'b' }, { which: 'c' }]);
    expect(events).toEqual(['STOP', 'RESUME']);
    const ids = server.received.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('sends arguments verbatim', async () => {
    const server = await serve();
    const qmp = await open(server.path);
    await qmp.execute('human-monitor-command', { 'command-line': 'info version' });
    expect(server.received[1]).toMatchObject({ execute: 'human-monitor-command', arguments: { 'command-line': 'info version' } });
  });

  it('turns an error reply into QMP_COMMAND with the class and description; the connection stays usable', async () => {
    const server = await serve({
      handler: afterCapabilities((command, client) =>
        command.execute === 'nope' ? client.error(command, 'CommandNotFound', 'The command nope has not been found') : client.reply(command, 'fine'),
      ),
    });
    const qmp = await open(server.path);
    const error = await rejection(qmp.execute('nope'));
    expect(error).toBeInstanceOf(QmpCommandError);
    expect(error).toMatchObject({ code: 'QMP_COMMAND', qmpClass: 'CommandNotFound', desc: 'The command nope has not been found', command: 'nope' });
    expect((error as Error).message).toBe('QEMU refused nope: The command nope has not been found (CommandNotFound)');
    expect(await qmp.execute('other')).toBe('fine');
  });

  it('times out a command that gets no answer, naming it; a late answer is ignored and the connection stays usable', async () => {
    let slow: FakeQmpCommand | undefined;
    const server = await serve({
      handler: afterCapabilities((command, client) => {
        if (command.execute === 'slow') {
          slow = command;
          return;
        }
        if (slow !== undefined) client.reply(slow, 'late answer to slow'); // arrives before the next reply
        client.reply(command, `answer to ${command.execute}`);
      }),
    });
    const qmp = await open(server.path);
    const started = Date.now();
    expect(await rejection(qmp.execute('slow', undefined, { timeoutMs: 50 }))).toMatchObject({ code: 'QMP_TIMEOUT', message: 'QEMU did not answer slow within 50 ms' });
    expect(Date.now() - started).toBeLessThan(500);
    expect(await qmp.execute('query-status')).toBe('answer to query-status');
  });

  it('answers delayed by the server still arrive within the timeout', async () => {
    const server = await serve({
      handler: afterCapabilities(async (command, client) => {
        await delay(40);
        client.reply(command, 'late but in time');
      }),
    });
    const qmp = await open(server.path);
    expect(await qmp.execute('query-status', undefined, { timeoutMs: 2_000 })).toBe('late but in time');
  });

  it('a command can be cancelled with a signal; the late answer is ignored', async () => {
    const server = await serve({
      handler: afterCapabilities(async (command, client) => {
        await delay(command.execute === 'slow' ? 80 : 0);
        client.reply(command, command.execute);
      }),
    });
    const qmp = await open(server.path);
    const controller = new AbortController();
    const slow = qmp.execute('slow', undefined, { signal: controller.signal });
    controller.abort();
    expect(await rejection(slow)).toMatchObject({ code: 'TIMEOUT', message: 'cancelled slow' });
    await delay(100);
    expect(await qmp.execute('fast')).toBe('fast');
  });

  it('fails every pending command with QMP_DISCONNECTED when QEMU dies mid-command, and later ones at once', async () => {
    const server = await serve({ handler: afterCapabilities(() => undefined) });
    const qmp = await open(server.path);
    const pending = [qmp.execute('a'), qmp.execute('b')];
    const waiting = qmp.waitForEvent(['SHUTDOWN'], { timeoutMs: 5_000 });
    await delay(20);
    const started = Date.now();
    (await server.client()).drop();
    for (const p of pending) expect(await rejection(p)).toMatchObject({ code: 'QMP_DISCONNECTED' });
    expect(await rejection(waiting)).toMatchObject({ code: 'QMP_DISCONNECTED' });
    expect(Date.now() - started).toBeLessThan(500);
    await qmp.closed;
    const received = server.received.length;
    const later = Date.now();
    expect(await rejection(qmp.execute('c'))).toMatchObject({ code: 'QMP_DISCONNECTED', message: expect.stringContaining('cannot run c') });
    expect(Date.now() - later).toBeLessThan(50);
    expect(server.received.length).toBe(received);
    expect(qmp.error).toMatchObject({ code: 'QMP_DISCONNECTED' });
  });

  it('fails cleanly with QMP_PROTOCOL on a garbled line: every pending command rejects and the socket closes', async () => {
    const server = await serve({
      handler: afterCapabilities((command, client) => {
        if (command.execute === 'b') client.send('{"return": {}, "id": "this is not json\r\n');
      }),
    });
    const qmp = await open(server.path);
    const a = qmp.execute('a');
    const b = qmp.execute('b');
    expect(await rejection(a)).toMatchObject({ code: 'QMP_PROTOCOL', message: expect.stringContaining('this is not json') });
    expect(await rejection(b)).toMatchObject({ code: 'QMP_PROTOCOL' });
    await qmp.closed;
    await (await server.client()).closed; // the client hung up, not the server
    expect(await rejection(qmp.execute('c'))).toMatchObject({ code: 'QMP_DISCONNECTED' });
  });

  it('JSON that is not an object is a protocol error too', async () => {
    const server = await serve({ handler: afterCapabilities((_command, client) => client.send('[1, 2, 3]\r\n')) });
    const qmp = await open(server.path);
    expect(await rejection(qmp.execute('a'))).toMatchObject({ code: 'QMP_PROTOCOL' });
  });

  it('close() rejects pending work and leaves no timers or sockets behind', async () => {
    const server = await serve({ handler: afterCapabilities(() => undefined) });
    await delay(20); // let sockets of earlier tests finish closing
    const timersBefore = countResources('Timeout');
    const pipesBefore = countResources('PipeWrap');
    const qmp = await open(server.path);
    const pending = qmp.execute('never', undefined, { timeoutMs: 60_000 });
    const waiting = qmp.waitForEvent(['SHUTDOWN'], { timeoutMs: 60_000 });
    expect(countResources('Timeout')).toBeGreaterThan(timersBefore);
    qmp.close();
    qmp.close(); // idempotent
    expect(await rejection(pending)).toMatchObject({ code: 'QMP_DISCONNECTED' });
    expect(await rejection(waiting)).toMatchObject({ code: 'QMP_DISCONNECTED' });
    await qmp.closed;
    await (await server.client()).closed;
    // Handles close on a later turn of the event loop, later still on a loaded machine.
    await expect.poll(() => countResources('Timeout'), { timeout: 2_000 }).toBe(timersBefore);
    await expect.poll(() => countResources('PipeWrap'), { timeout: 2_000 }).toBe(pipesBefore);
  });
});

describe('QmpConnection: events', () => {
  it('waitForEvent resolves with the named event, skipping others', async () => {
    const server = await serve();
    const qmp = await open(server.path);
    const waiting = qmp.waitForEvent(['SHUTDOWN', 'POWERDOWN'], { timeoutMs: 2_000 });
    const client = await server.client();
    client.event('RESUME');
    client.event('SHUTDOWN', { guest: true, reason: 'guest-shutdown' });
    expect(await waiting).toMatchObject({ event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' }, timestamp: { seconds: 1 } });
  });

  it('waitForEvent takes a predicate', async () => {
    const server = await serve();
    const qmp = await open(server.path);
    const waiting = qmp.waitForEvent((e) => e.event === 'DEVICE_DELETED' && e.data?.['device'] === 'disk1', { timeoutMs: 2_000 });
    const client = await server.client();
    client.event('DEVICE_DELETED', { device: 'disk0' });
    client.event('DEVICE_DELETED', { device: 'disk1' });
    expect(await waiting).toMatchObject({ data: { device: 'disk1' } });
  });

  it('does not miss an event already on its way when waitForEvent is called', async () => {
    const server = await serve({
      handler: afterCapabilities((command, client) => {
        client.event('STOP');
        client.reply(command);
      }),
    });
    const qmp = await open(server.path);
    const stopping = qmp.execute('stop'); // the STOP event is sent before the reply
    const stopped = qmp.waitForEvent(['STOP'], { timeoutMs: 2_000 });
    await stopping;
    expect(await stopped).toMatchObject({ event: 'STOP' });
  });

  it('waitForEvent times out with QMP_TIMEOUT, and can be cancelled', async () => {
    const server = await serve();
    const qmp = await open(server.path);
    expect(await rejection(qmp.waitForEvent(['SHUTDOWN'], { timeoutMs: 30 }))).toMatchObject({ code: 'QMP_TIMEOUT', message: 'no SHUTDOWN event from QEMU within 30 ms' });
    const controller = new AbortController();
    const waiting = qmp.waitForEvent(['SHUTDOWN'], { timeoutMs: 60_000, signal: controller.signal });
    controller.abort();
    expect(await rejection(waiting)).toMatchObject({ code: 'TIMEOUT' });
  });

  it('waitForEvent on a closed connection rejects at once', async () => {
    const server = await serve();
    const qmp = await open(server.path);
    (await server.client()).drop();
    await qmp.closed;
    const started = Date.now();
    expect(await rejection(qmp.waitForEvent(['SHUTDOWN'], { timeoutMs: 5_000 }))).toMatchObject({ code: 'QMP_DISCONNECTED' });
    expect(Date.now() - started).toBeLessThan(50);
  });

  it('onEvent unsubscribes, and a listener that throws does not break the session or the others', async () => {
    const server = await serve();
    const qmp = await open(server.path);
    const seen: string[] = [];
    qmp.onEvent(() => {
      throw new Error('faulty listener');
    });
    const unsubscribe = qmp.onEvent((e: QmpEvent) => seen.push(`a:${e.event}`));
    qmp.onEvent((e: QmpEvent) => seen.push(`b:${e.event}`));
    const client: FakeQmpClient = await server.client();
    const first = qmp.waitForEvent(['RESET'], { timeoutMs: 2_000 });
    client.event('RESET');
    await first;
    unsubscribe();
    const second = qmp.waitForEvent(['RESET'], { timeoutMs: 2_000 });
    client.event('RESET');
    await second;
    expect(seen).toEqual(['a:RESET', 'b:RESET', 'b:RESET']);
    expect(await qmp.execute('query-status')).toEqual({});
  });
});
