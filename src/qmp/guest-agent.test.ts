import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { QmpCommandError } from './connection.ts';
import { GuestAgent } from './guest-agent.ts';

interface AgentRequest {
  execute: string;
  arguments?: Record<string, unknown>;
  id?: unknown;
}

type AgentHandler = (request: AgentRequest, peer: AgentPeer) => void | Promise<void>;

/** One connection to the fake agent. */
class AgentPeer {
  readonly socket: Socket;
  /** 0xFF bytes received (the client's flush before a sync). */
  flushes = 0;

  constructor(socket: Socket) {
    this.socket = socket;
  }

  write(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  reply(request: AgentRequest, value: unknown): void {
    this.write(`${JSON.stringify({ return: value, ...(request.id === undefined ? {} : { id: request.id }) })}\n`);
  }

  error(request: AgentRequest, qmpClass: string, desc: string): void {
    this.write(`${JSON.stringify({ error: { class: qmpClass, desc }, ...(request.id === undefined ? {} : { id: request.id }) })}\n`);
  }

  /** What the real agent sends for guest-sync-delimited: the 0xFF sentinel, then the id. */
  syncReply(request: AgentRequest, before: Buffer = Buffer.alloc(0)): void {
    this.write(Buffer.concat([before, Buffer.from([0xff]), Buffer.from(`{"return": ${JSON.stringify(request.arguments?.['id'])}}\n`)]));
  }
}

/**
 * A fake qemu-guest-agent on a real UNIX socket, parsing like the real one: newline-framed JSON, and a 0xFF
 * byte discards a partial request. The handler scripts the answers; the default syncs and answers `{}`.
 */
class FakeAgent {
  readonly path: string;
  readonly received: AgentRequest[] = [];
  readonly peers: AgentPeer[] = [];
  private readonly server: Server;

  private constructor(path: string, server: Server) {
    this.path = path;
    this.server = server;
  }

  static async start(handler: AgentHandler = defaultHandler, onConnect?: (peer: AgentPeer) => void): Promise<FakeAgent> {
    const path = join(tempDir(), 'qga.sock');
    let fake: FakeAgent | undefined;
    const server = createServer((socket) => {
      const peer = new AgentPeer(socket);
      fake?.peers.push(peer);
      socket.on('error', () => {});
      onConnect?.(peer);
      let buffer = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        for (const byte of chunk) {
          if (byte === 0xff) {
            peer.flushes++;
            buffer = Buffer.alloc(0);
          } else if (byte === 0x0a) {
            const line = buffer.toString('utf8');
            buffer = Buffer.alloc(0);
            if (line.trim() === '') continue;
            const request = JSON.parse(line) as AgentRequest;
            fake?.received.push(request);
            void Promise.resolve(handler(request, peer)).catch(() => socket.destroy());
          } else {
            buffer = Buffer.concat([buffer, Buffer.from([byte])]);
          }
        }
      });
    });
    fake = new FakeAgent(path, server);
    await new Promise<void>((resolve) => server.listen(path, () => resolve()));
    agents.push(fake);
    return fake;
  }

  get commandNames(): string[] {
    return this.received.map((r) => r.execute);
  }

  async stop(): Promise<void> {
    for (const peer of this.peers) peer.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function defaultHandler(request: AgentRequest, peer: AgentPeer): void {
  if (request.execute === 'guest-sync-delimited') peer.syncReply(request);
  else peer.reply(request, {});
}

const agents: FakeAgent[] = [];
const clients: GuestAgent[] = [];
const dirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-qga-test-'));
  dirs.push(dir);
  return dir;
}

async function connect(path: string, timeoutMs = 2_000): Promise<GuestAgent> {
  const agent = await GuestAgent.connect(path, { timeoutMs });
  clients.push(agent);
  return agent;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const a of agents.splice(0)) await a.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('GuestAgent sync', () => {
  it('flushes with 0xFF, then skips stale output and garbage up to the 0xFF sentinel', async () => {
    const fake = await FakeAgent.start(
      (request, peer) => {
        if (request.execute === 'guest-sync-delimited') {
          // more stale bytes, and a half line, right before the sentinel
          peer.syncReply(request, Buffer.from('{"return": {"stale": 2}}\n{"retu'));
        } else peer.reply(request, { answered: request.execute });
      },
      // what an earlier session left in the channel: a whole stale reply, binary junk, a partial line
      (peer) => peer.write(Buffer.concat([Buffer.from('{"return": {"stale": 1}}\n'), Buffer.from([0x00, 0x80, 0xfe]), Buffer.from('{"partial": ')])),
    );
    const agent = await connect(fake.path);
    expect(fake.peers[0]!.flushes).toBe(1);
    expect(fake.commandNames).toEqual(['guest-sync-delimited']);
    const id = fake.received[0]!.arguments?.['id'];
    expect(typeof id).toBe('number');
    await agent.ping();
    expect(fake.commandNames).toEqual(['guest-sync-delimited', 'guest-ping']);
  });

  it('uses a fresh random id for every sync', async () => {
    const fake = await FakeAgent.start();
    for (let i = 0; i < 3; i++) (await connect(fake.path)).close();
    const ids = fake.received.filter((r) => r.execute === 'guest-sync-delimited').map((r) => r.arguments?.['id']);
    expect(new Set(ids).size).toBe(3);
  });

  it('ignores an answer to an older sync and waits for its own id', async () => {
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute !== 'guest-sync-delimited') return peer.reply(request, {});
      peer.syncReply({ execute: 'guest-sync-delimited', arguments: { id: 12345 } }); // a sync from a previous client
      peer.syncReply(request);
    });
    await connect(fake.path);
  });

  it('handles the sentinel and the reply arriving byte by byte', async () => {
    const fake = await FakeAgent.start(async (request, peer) => {
      const answer =
        request.execute === 'guest-sync-delimited'
          ? Buffer.concat([Buffer.from('junk'), Buffer.from([0xff]), Buffer.from(`{"return": ${JSON.stringify(request.arguments?.['id'])}}\n`)])
          : Buffer.from(`${JSON.stringify({ return: { version: '7.2.0', supported_commands: [{ name: 'guest-ping', enabled: true, 'success-response': true }] }, id: request.id })}\n`);
      for (const byte of answer) {
        peer.write(Buffer.from([byte]));
        await delay(1);
      }
    });
    const agent = await connect(fake.path);
    expect(await agent.info()).toEqual({ version: '7.2.0', commands: [{ name: 'guest-ping', enabled: true, successResponse: true }] });
  });

  it('an agent that never answers is TIMEOUT with a hint about qemu-guest-agent', async () => {
    const fake = await FakeAgent.start(() => undefined);
    const started = Date.now();
    const error = await rejection(GuestAgent.connect(fake.path, { timeoutMs: 100 }));
    expect(error).toMatchObject({
      code: 'TIMEOUT',
      message: 'the guest agent did not answer guest-sync-delimited within 100 ms',
      hint: expect.stringContaining('qemu-guest-agent'),
    });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('a missing socket is NOT_FOUND', async () => {
    expect(await rejection(GuestAgent.connect(join(tempDir(), 'none.sock')))).toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('GuestAgent requests', () => {
  it('after a timeout, the late answer is not taken for the next request (it resyncs first)', async () => {
    let held: { request: AgentRequest; peer: AgentPeer } | undefined;
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') {
        if (held !== undefined) held.peer.reply(held.request, 'late answer to the slow one'); // lands before the sentinel
        held = undefined;
        return peer.syncReply(request);
      }
      if (request.execute === 'guest-fsfreeze-status' && held === undefined && fake.commandNames.filter((n) => n === 'guest-fsfreeze-status').length === 1) {
        held = { request, peer };
        return;
      }
      peer.reply(request, request.execute === 'guest-fsfreeze-status' ? 'thawed' : {});
    });
    const agent = await connect(fake.path);
    expect(await rejection(agent.fsfreezeStatus({ timeoutMs: 50 }))).toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('guest-fsfreeze-status') });
    expect(await agent.fsfreezeStatus()).toBe('thawed');
    expect(fake.commandNames).toEqual(['guest-sync-delimited', 'guest-fsfreeze-status', 'guest-sync-delimited', 'guest-fsfreeze-status']);
  });

  it('a stale answer carrying another id is skipped even without a resync', async () => {
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      peer.write(`${JSON.stringify({ return: 'someone else', id: 999_999 })}\n`);
      peer.reply(request, 'thawed');
    });
    const agent = await connect(fake.path);
    expect(await agent.fsfreezeStatus()).toBe('thawed');
  });

  it('runs concurrent calls one at a time, each getting its own answer', async () => {
    const fake = await FakeAgent.start(async (request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      await delay(request.execute === 'guest-ping' ? 30 : 0);
      if (request.execute === 'guest-ping') peer.reply(request, {});
      if (request.execute === 'guest-fsfreeze-status') peer.reply(request, 'frozen');
      if (request.execute === 'guest-info') peer.reply(request, { version: '9.9', supported_commands: [] });
    });
    const agent = await connect(fake.path);
    const [ping, status, info] = await Promise.all([agent.ping(), agent.fsfreezeStatus(), agent.info()]);
    expect(ping).toBeUndefined();
    expect(status).toBe('frozen');
    expect(info).toEqual({ version: '9.9', commands: [] });
  });

  it('an error answer is QMP_COMMAND with the class and description, and the session goes on', async () => {
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      if (request.execute === 'guest-fsfreeze-freeze') return peer.error(request, 'CommandNotFound', 'Command guest-fsfreeze-freeze has been disabled');
      peer.reply(request, 1);
    });
    const agent = await connect(fake.path);
    const error = await rejection(agent.fsfreezeFreeze());
    expect(error).toBeInstanceOf(QmpCommandError);
    expect(error).toMatchObject({ code: 'QMP_COMMAND', qmpClass: 'CommandNotFound', message: expect.stringContaining('the guest agent refused guest-fsfreeze-freeze') });
    expect(await agent.fsfreezeThaw()).toBe(1);
  });

  it('maps network interfaces to typed records', async () => {
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      peer.reply(request, [
        { name: 'lo', 'hardware-address': '00:00:00:00:00:00', 'ip-addresses': [{ 'ip-address-type': 'ipv4', 'ip-address': '127.0.0.1', prefix: 8 }] },
        { name: 'eth0', 'hardware-address': '52:54:00:12:34:56', 'ip-addresses': [{ 'ip-address-type': 'ipv6', 'ip-address': 'fe80::1', prefix: 64 }], statistics: {} },
        { name: 'dummy0' },
        { name: 'enp0s2', 'hardware-address': '52:54:00:ab:cd:ef', statistics: { 'rx-bytes': 1500, 'rx-packets': 3, 'rx-errs': 0, 'rx-dropped': 0, 'tx-bytes': 700, 'tx-packets': 2, 'tx-errs': 0, 'tx-dropped': 0 } },
      ]);
    });
    const agent = await connect(fake.path);
    expect(await agent.networkGetInterfaces()).toEqual([
      { name: 'lo', hardwareAddress: '00:00:00:00:00:00', ipAddresses: [{ type: 'ipv4', address: '127.0.0.1', prefix: 8 }] },
      { name: 'eth0', hardwareAddress: '52:54:00:12:34:56', ipAddresses: [{ type: 'ipv6', address: 'fe80::1', prefix: 64 }] },
      { name: 'dummy0', hardwareAddress: undefined, ipAddresses: [] },
      { name: 'enp0s2', hardwareAddress: '52:54:00:ab:cd:ef', ipAddresses: [], statistics: { rxBytes: 1500, rxPackets: 3, txBytes: 700, txPackets: 2 } },
    ]);
  });

  it('rejects the request in flight with QMP_DISCONNECTED when the channel closes, and later ones at once', async () => {
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      peer.socket.destroy();
    });
    const agent = await connect(fake.path);
    expect(await rejection(agent.ping())).toMatchObject({ code: 'QMP_DISCONNECTED' });
    await agent.closed;
    expect(await rejection(agent.ping())).toMatchObject({ code: 'QMP_DISCONNECTED' });
  });

  it('an answer that is not JSON is QMP_PROTOCOL, and the next request resyncs', async () => {
    let garbled = false;
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      if (!garbled) {
        garbled = true;
        return peer.write('<<garbage>>\n');
      }
      peer.reply(request, {});
    });
    const agent = await connect(fake.path);
    expect(await rejection(agent.ping())).toMatchObject({ code: 'QMP_PROTOCOL', message: expect.stringContaining('<<garbage>>') });
    await agent.ping();
    expect(fake.commandNames).toEqual(['guest-sync-delimited', 'guest-ping', 'guest-sync-delimited', 'guest-ping']);
  });
});

describe('GuestAgent exec', () => {
  it('starts the program, polls until it exits, and decodes its output; input is sent base64', async () => {
    let polls = 0;
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      if (request.execute === 'guest-exec') return peer.reply(request, { pid: 4242 });
      if (request.execute === 'guest-exec-status') {
        polls++;
        if (polls < 3) return peer.reply(request, { exited: false });
        return peer.reply(request, {
          exited: true,
          exitcode: 3,
          'out-data': Buffer.from('héllo\n').toString('base64'),
          'err-data': Buffer.from('oops\n').toString('base64'),
        });
      }
    });
    const agent = await connect(fake.path);
    const result = await agent.exec('/bin/sh', ['-c', 'cat; exit 3'], { input: 'some input', env: ['A=1'] });
    expect(result).toEqual({ exitCode: 3, stdout: 'héllo\n', stderr: 'oops\n' });
    expect(polls).toBe(3);
    const start = fake.received.find((r) => r.execute === 'guest-exec')!;
    expect(start.arguments).toEqual({ path: '/bin/sh', arg: ['-c', 'cat; exit 3'], 'capture-output': true, 'input-data': Buffer.from('some input').toString('base64'), env: ['A=1'] });
    expect(fake.received.filter((r) => r.execute === 'guest-exec-status').every((r) => r.arguments?.['pid'] === 4242)).toBe(true);
  });

  it('reports a program killed by a signal as 128 + signal, with the signal', async () => {
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      if (request.execute === 'guest-exec') return peer.reply(request, { pid: 7 });
      peer.reply(request, { exited: true, signal: 9, 'out-truncated': true });
    });
    const agent = await connect(fake.path);
    expect(await agent.exec('/bin/sleep', ['100'])).toEqual({ exitCode: 137, signal: 9, stdout: '', stderr: '', truncated: true });
  });

  it('gives up with TIMEOUT, naming the program and guest pid, when it does not exit in time', async () => {
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      if (request.execute === 'guest-exec') return peer.reply(request, { pid: 99 });
      peer.reply(request, { exited: false });
    });
    const agent = await connect(fake.path);
    const started = Date.now();
    expect(await rejection(agent.exec('/bin/sleep', ['100'], { timeoutMs: 120 }))).toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/\/bin\/sleep.*120 ms.*pid 99/) });
    expect(Date.now() - started).toBeLessThan(1_000);
    await agent.ping(); // still usable
  });
});

describe('GuestAgent files', () => {
  it('writes a file: open for writing, the bytes base64, close; a short write is an error', async () => {
    let count: number | undefined;
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      if (request.execute === 'guest-file-open') return peer.reply(request, 1000);
      if (request.execute === 'guest-file-write') return peer.reply(request, { count: count ?? Buffer.from(String(request.arguments?.['buf-b64']), 'base64').length, eof: false });
      if (request.execute === 'guest-file-close') return peer.reply(request, {});
    });
    const agent = await connect(fake.path);
    await agent.writeFile('/run/x/job.json', '{"é": 1}');
    expect(fake.received.filter((r) => r.execute !== 'guest-sync-delimited').map((r) => [r.execute, r.arguments])).toEqual([
      ['guest-file-open', { path: '/run/x/job.json', mode: 'w' }],
      ['guest-file-write', { handle: 1000, 'buf-b64': Buffer.from('{"é": 1}').toString('base64') }],
      ['guest-file-close', { handle: 1000 }],
    ]);
    count = 3;
    expect(await rejection(agent.writeFile('/run/x/job.json', 'four'))).toMatchObject({ code: 'COMMAND_FAILED', message: expect.stringContaining('wrote 3 of 4 bytes to /run/x/job.json') });
    expect(fake.commandNames.at(-1)).toBe('guest-file-close');
  });

  it('reads a whole file in chunks until its end; a missing file is undefined, any other refusal an error', async () => {
    const chunks = ['first part, ', 'second part'];
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      if (request.execute === 'guest-file-open') {
        const path = request.arguments?.['path'];
        if (path === '/missing') return peer.error(request, 'GenericError', "failed to open file '/missing' (mode: 'r'): No such file or directory");
        if (path === '/denied') return peer.error(request, 'GenericError', "failed to open file '/denied' (mode: 'r'): Permission denied");
        return peer.reply(request, 7);
      }
      if (request.execute === 'guest-file-read') {
        const chunk = chunks.shift() ?? '';
        return peer.reply(request, { count: Buffer.byteLength(chunk), 'buf-b64': Buffer.from(chunk).toString('base64'), eof: chunks.length === 0 });
      }
      if (request.execute === 'guest-file-close') return peer.reply(request, {});
    });
    const agent = await connect(fake.path);
    expect((await agent.readFile('/run/x/report.json'))?.toString()).toBe('first part, second part');
    expect(fake.received.filter((r) => r.execute === 'guest-file-read').every((r) => r.arguments?.['handle'] === 7)).toBe(true);
    expect(fake.commandNames.at(-1)).toBe('guest-file-close');
    expect(await agent.readFile('/missing')).toBeUndefined();
    expect(await rejection(agent.readFile('/denied'))).toMatchObject({ code: 'QMP_COMMAND', message: expect.stringContaining('Permission denied') });
  });
});

describe('GuestAgent shutdown', () => {
  it('resolves when the agent sends nothing back (success), and resyncs before the next request', async () => {
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      if (request.execute === 'guest-shutdown') return; // no answer on success
      peer.reply(request, {});
    });
    const agent = await connect(fake.path);
    await agent.shutdown({ mode: 'halt', graceMs: 50 });
    expect(fake.received.at(-1)).toMatchObject({ execute: 'guest-shutdown', arguments: { mode: 'halt' } });
    await agent.ping();
    expect(fake.commandNames).toEqual(['guest-sync-delimited', 'guest-shutdown', 'guest-sync-delimited', 'guest-ping']);
  });

  it('rejects when the agent refuses', async () => {
    const fake = await FakeAgent.start((request, peer) => {
      if (request.execute === 'guest-sync-delimited') return peer.syncReply(request);
      peer.error(request, 'GenericError', 'child process has failed to shutdown');
    });
    const agent = await connect(fake.path);
    expect(await rejection(agent.shutdown({ graceMs: 500 }))).toMatchObject({ code: 'QMP_COMMAND', desc: 'child process has failed to shutdown' });
  });
});
