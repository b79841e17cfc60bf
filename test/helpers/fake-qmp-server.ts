import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What the fake QEMU does with each command it receives; return raw text to send (or nothing). */
export type CommandHandler = (command: { execute: string; id?: unknown; arguments?: unknown }, socket: Socket) => string | undefined;

export const GREETING = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}\r\n';

/**
 * A scripted QMP peer on a real UNIX socket, for protocol edge cases real QEMU will not produce on demand:
 * split frames, garbage, silence, disconnects mid-command.
 */
export class FakeQmpServer {
  readonly path: string;
  readonly received: string[] = [];
  private readonly dir: string;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  private constructor(dir: string, server: Server) {
    this.dir = dir;
    this.path = join(dir, 'qmp.sock');
    this.server = server;
  }

  static async start(options: { greet?: boolean; handler?: CommandHandler; greeting?: string } = {}): Promise<FakeQmpServer> {
    const dir = mkdtempSync(join(tmpdir(), 'fake-qmp-'));
    const handler: CommandHandler = options.handler ?? ((c) => JSON.stringify({ return: {}, id: c.id }) + '\r\n');
    let fake!: FakeQmpServer;
    const server = createServer((socket) => {
      fake.sockets.add(socket);
      socket.on('close', () => fake.sockets.delete(socket));
      socket.on('error', () => {});
      if (options.greet !== false) socket.write(options.greeting ?? GREETING);
      let buffer = '';
      socket.on('data', (d) => {
        buffer += d.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop()!;
        for (const line of lines) {
          if (line.trim() === '') continue;
          fake.received.push(line);
          const reply = handler(JSON.parse(line), socket);
          if (reply !== undefined && !socket.destroyed) socket.write(reply);
        }
      });
    });
    fake = new FakeQmpServer(dir, server);
    await new Promise<void>((resolve) => server.listen(fake.path, resolve));
    return fake;
  }

  /** Sends raw bytes to every connected client. */
  send(text: string): void {
    for (const s of this.sockets) s.write(text);
  }

  dropClients(): void {
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.dropClients();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Replies `{"return": value}` to every command, with the same id. */
export function reply(command: { id?: unknown }, value: unknown = {}): string {
  return `${JSON.stringify({ return: value, id: command.id })}\r\n`;
}
