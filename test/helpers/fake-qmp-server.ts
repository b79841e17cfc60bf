import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** A command as the fake received it. */
export interface FakeQmpCommand {
  execute: string;
  id?: unknown;
  arguments?: Record<string, unknown>;
}

/** What a test scripts for each command; the default answers `{"return": {}}` to everything. */
export type FakeQmpHandler = (command: FakeQmpCommand, client: FakeQmpClient) => void | Promise<void>;

export const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}\r\n';

/** One accepted connection, with the moves a misbehaving QEMU can make. */
export class FakeQmpClient {
  readonly socket: Socket;
  /** Resolves when the client side has gone (closed by the client or dropped by us). */
  readonly closed: Promise<void>;

  constructor(socket: Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Raw text, as is (one write). */
  send(text: string): void {
    if (!this.socket.destroyed) this.socket.write(text);
  }

  /** Raw text in pieces of `size` bytes, each in its own write, a macrotask apart, so they arrive as separate chunks. */
  async sendSplit(text: string, size = 1): Promise<void> {
    const bytes = Buffer.from(text);
    for (let at = 0; at < bytes.length && !this.socket.destroyed; at += size) {
      this.socket.write(bytes.subarray(at, at + size));
      await delay(1);
    }
  }

  reply(command: FakeQmpCommand, value: unknown = {}): void {
    this.send(`${JSON.stringify({ return: value, id: command.id })}\r\n`);
  }

  error(command: FakeQmpCommand, qmpClass: string, desc: string): void {
    this.send(`${JSON.stringify({ error: { class: qmpClass, desc }, id: command.id })}\r\n`);
  }

  event(name: string, data?: Record<string, unknown>): void {
    this.send(`${JSON.stringify({ event: name, ...(data === undefined ? {} : { data }), timestamp: { seconds: 1, microseconds: 2 } })}\r\n`);
  }

  /** Closes the connection abruptly, as a QEMU that died would. */
  drop(): void {
    this.socket.destroy();
  }
}

/**
 * A scripted QMP peer on a real UNIX socket, for the protocol edge cases real QEMU will not produce on demand:
 * split frames, garbage, silence, delays, disconnects mid-command. Everything it creates (socket, temp dir,
 * connections) goes away in stop().
 */
export class FakeQmpServer {
  readonly path: string;
  /** Every command received, in order, across connections. */
  readonly received: FakeQmpCommand[] = [];
  /** Every connection accepted, in order. */
  readonly clients: FakeQmpClient[] = [];
  /** The temp dir this server made (removed in stop()), if it made one. */
  private readonly ownDir: string | undefined;
  private readonly server: Server;

  private constructor(path: string, ownDir: string | undefined, server: Server) {
    this.path = path;
    this.ownDir = ownDir;
    this.server = server;
  }

  /**
   * `greeting`: the text sent on accept, or null to never greet (a monitor held by another client).
   * `handler`: called for each command line received (may be async, e.g. to delay its answer).
   * `path`: where to listen (default: a socket in a temp dir of its own).
   */
  static async start(options: { greeting?: string | null; handler?: FakeQmpHandler; path?: string } = {}): Promise<FakeQmpServer> {
    const ownDir = options.path === undefined ? mkdtempSync(join(tmpdir(), 'virtnode-fake-qmp-')) : undefined;
    const path = options.path ?? join(ownDir ?? tmpdir(), 'qmp.sock');
    const handler: FakeQmpHandler = options.handler ?? ((command, client) => client.reply(command));
    const greeting = options.greeting === undefined ? GREETING : options.greeting;
    let fake: FakeQmpServer | undefined;
    const server = createServer((socket) => {
      const client = new FakeQmpClient(socket);
      fake?.clients.push(client);
      socket.on('error', () => {});
      if (greeting !== null) client.send(greeting);
      let buffer = '';
      socket.on('data', (data) => {
        buffer += data.toString('utf8');
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) {
          if (line.trim() === '') continue;
          const command = JSON.parse(line) as FakeQmpCommand;
          fake?.received.push(command);
          void Promise.resolve(handler(command, client)).catch(() => client.drop());
        }
      });
    });
    fake = new FakeQmpServer(path, ownDir, server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(fake.path, () => resolve());
    });
    return fake;
  }

  /** Names of the commands received so far. */
  get commandNames(): string[] {
    return this.received.map((c) => c.execute);
  }

  /** Resolves with the n-th (0-based) accepted connection, waiting for it if needed. */
  async client(n = 0, timeoutMs = 2_000): Promise<FakeQmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const client = this.clients[n];
      if (client !== undefined) return client;
      if (Date.now() > deadline) throw new Error(`fake QMP server: no connection #${n} within ${timeoutMs} ms`);
      await delay(2);
    }
  }

  dropClients(): void {
    for (const client of this.clients) client.drop();
  }

  async stop(): Promise<void> {
    this.dropClients();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.ownDir !== undefined) rmSync(this.ownDir, { recursive: true, force: true });
  }
}
