import { afterEach, describe, expect, it } from 'vitest';
import { FakeQmpServer, GREETING, reply } from '../../test/helpers/fake-qmp-server.ts';
import { LineFramer } from './framing.ts';
import { QmpCommandError, QmpConnection } from './connection.ts';

const servers: FakeQmpServer[] = [];
const connections: QmpConnection[] = [];
async function serve(options: Parameters<typeof FakeQmpServer.start>[0]): Promise<FakeQmpServer> {
  const s = await FakeQmpServer.start(options);
  servers.push(s);
  return s;
}
async function open(server: FakeQmpServer, timeoutMs = 2_000): Promise<QmpConnection> {
  const c = await QmpConnection.connect(server.path, { timeoutMs });
  connections.push(c);
  return c;
}
afterEach(async () => {
  for (const c of connections.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.stop();
});

describe('LineFramer', () => {
  it('joins split frames and splits joined ones, tolerating CRLF', () => {
    const f = new LineFramer();
    expect(f.push('{"a":')).toEqual([]);
    expect(f.push('1}\r\n{"b":2}\n{"c"')).toEqual(['{"a":1}', '{"b":2}']);
    expect(f.push(':3}\n\n')).toEqual(['{"c":3}']);
    expect(f.pending).toBe('');
  });
});

describe('QmpConnection against a fake QEMU', () => {
  it('negotiates capabilities and matches replies by id, even out of order with events in between', async () => {
    const held: Array<{ id?: unknown; execute: string }> = [];
    const server = await serve({
      handler: (c, socket) => {
        if (c.execute === 'qmp_capabilities') return reply(c);
        held.push(c);
        if (held.length === 2) {
          // answer the second first, with an event between
          socket.write(reply(held[1]!, { which: 'second' }));
          socket.write('{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}\r\n');
          socket.write(reply(held[0]!, { which: 'first' }));
        }
        return undefined;
      },
    });
    const qmp = await open(server);
    expect(qmp.greeting.version.qemu.major).toBe(7);
    const events: string[] = [];
    qmp.onEvent((e) => events.push(e.event));
    const [a, b] = await Promise.all([qmp.execute('query-status'), qmp.execute('query-version')]);
    expect(a).toEqual({ which: 'first' });
    expect(b).toEqual({ which: 'second' });
    expect(events).toEqual(['STOP']);
    expect(server.received[0]).toContain('qmp_capabilities');
  });

  it('survives frames split byte by byte', async () => {
    const server = await serve({
      greet: false,
      handler: (c, socket) => {
        const text = reply(c, { status: 'running', running: true });
        for (const ch of text) socket.write(ch);
        return undefined;
      },
    });
    const connecting = open(server);
    setTimeout(() => {
      for (const ch of GREETING) server.send(ch);
    }, 20);
    const qmp = await connecting;
    expect(await qmp.execute('query-status')).toEqual({ status: 'running', running: true });
  });

  it('turns an error reply into QMP_COMMAND with the class and description', async () => {
    const server = await serve({
      handler: (c) =>
        c.execute === 'qmp_capabilities'
          ? reply(c)
          : `${JSON.stringify({ error: { class: 'CommandNotFound', desc: "The command nope has not been found" }, id: c.id })}\n`,
    });
    const qmp = await open(server);
    const error = await qmp.execute('nope').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpCommandError);
    expect(error).toMatchObject({ code: 'QMP_COMMAND', qmpClass: 'CommandNotFound' });
    expect((error as Error).message).toBe('QEMU refused nope: The command nope has not been found (CommandNotFound)');
  });

  it('times out a command that gets no answer, naming it; the connection stays usable', async () => {
    const server = await serve({ handler: (c) => (c.execute === 'slow' ? undefined : reply(c)) });
    const qmp = await open(server);
    await expect(qmp.execute('slow', undefined, { timeoutMs: 50 })).rejects.toMatchObject({ code: 'QMP_TIMEOUT', message: 'QEMU did not answer slow within 50 ms' });
    expect(await qmp.execute('query-status')).toEqual({});
  });

  it('fails every pending command with QMP_DISCONNECTED when QEMU dies mid-command, and later ones at once', async () => {
    const server = await serve({ handler: (c) => (c.execute === 'qmp_capabilities' ? reply(c) : undefined) });
    const qmp = await open(server);
    const pending = [qmp.execute('a'), qmp.execute('b')];
    setTimeout(() => server.dropClients(), 20);
    for (const p of pending) await expect(p).rejects.toMatchObject({ code: 'QMP_DISCONNECTED' });
    await qmp.closed;
    await expect(qmp.execute('c')).rejects.toMatchObject({ code: 'QMP_DISCONNECTED' });
  });

  it('fails cleanly with QMP_PROTOCOL on garbage', async () => {
    const server = await serve({ handler: (c) => (c.execute === 'qmp_capabilities' ? reply(c) : 'this is not json\n') });
    const qmp = await open(server);
    await expect(qmp.execute('query-status')).rejects.toMatchObject({ code: 'QMP_PROTOCOL', message: expect.stringContaining('this is not json') });
    await qmp.closed;
  });

  it('garbage instead of a greeting is QMP_PROTOCOL', async () => {
    const server = await serve({ greeting: 'HELLO\n' });
    await expect(open(server)).rejects.toMatchObject({ code: 'QMP_PROTOCOL' });
  });

  it('a monitor that accepts but never greets is BUSY (another client holds it)', async () => {
    const server = await serve({ greet: false });
    const started = Date.now();
    await expect(open(server, 200)).rejects.toMatchObject({ code: 'BUSY', message: expect.stringContaining('did not greet') });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('waits for a socket that does not exist yet (QEMU still starting), and gives up at the deadline', async () => {
    const missing = `/tmp/virtnode-no-such-${process.pid}.sock`;
    const started = Date.now();
    await expect(QmpConnection.connect(missing, { timeoutMs: 150 })).rejects.toMatchObject({ code: 'QMP_TIMEOUT' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
  });

  it('waitForEvent resolves on the event, and times out without one', async () => {
    const server = await serve({});
    const qmp = await open(server);
    const waiting = qmp.waitForEvent(['SHUTDOWN'], { timeoutMs: 2_000 });
    server.send('{"event": "RESUME"}\n{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}\n');
    expect(await waiting).toMatchObject({ event: 'SHUTDOWN', data: { guest: true } });
    await expect(qmp.waitForEvent(['SHUTDOWN'], { timeoutMs: 30 })).rejects.toMatchObject({ code: 'QMP_TIMEOUT' });
  });

  it('waitForEvent fails at once when the connection drops', async () => {
    const server = await serve({});
    const qmp = await open(server);
    const waiting = qmp.waitForEvent(['SHUTDOWN'], { timeoutMs: 5_000 });
    server.dropClients();
    await expect(waiting).rejects.toMatchObject({ code: 'QMP_DISCONNECTED' });
  });
});
