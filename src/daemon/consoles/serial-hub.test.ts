import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SCROLLBACK_BYTES, SerialHub, SerialHubs, type SerialViewer } from './serial-hub.ts';

/** Plays QEMU's serial chardev: one client at a time, output written to the socket and then to the log. */
class FakeSerial {
  readonly server: Server;
  client: Socket | undefined;
  input = '';
  readonly socketPath: string;
  readonly logPath: string;
  constructor(socketPath: string, logPath: string) {
    this.socketPath = socketPath;
    this.logPath = logPath;
    this.server = createServer((socket) => {
      this.client = socket;
      socket.on('data', (d) => (this.input += d.toString()));
    });
  }
  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }
  print(text: string): void {
    this.client?.write(text);
    appendFileSync(this.logPath, text);
  }
  async close(): Promise<void> {
    this.client?.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

class Recorder implements SerialViewer {
  text = '';
  closedWith: string | undefined;
  output(data: Buffer): void {
    this.text += data.toString();
  }
  closed(reason: string): void {
    this.closedWith = reason;
  }
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('serial hub', () => {
  let dir: string;
  let serial: FakeSerial;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virtnode-serial-hub-'));
    serial = new FakeSerial(join(dir, 'serial.sock'), join(dir, 'console.log'));
    writeFileSync(serial.logPath, 'boot line 1\nboot line 2\n');
    await serial.listen();
  });
  afterEach(async () => {
    await serial.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends the scroll-back, then live output, exactly once, and passes keystrokes to the guest', async () => {
    const hub = new SerialHub({ socket: serial.socketPath, log: serial.logPath });
    const viewer = new Recorder();
    const session = hub.join(viewer);
    expect(viewer.text).toBe('boot line 1\nboot line 2\n');
    await until(() => serial.client !== undefined, 'the hub to connect');
    session.input(Buffer.from('echo hi\n'));
    await until(() => serial.input === 'echo hi\n', 'input on the serial socket');
    serial.print('hi\ntest-guest# ');
    await until(() => viewer.text.endsWith('test-guest# '), 'live output');
    expect(viewer.text).toBe('boot line 1\nboot line 2\nhi\ntest-guest# ');

    // A second viewer joins: it sees the same history and then the same live output, nothing twice.
    const second = new Recorder();
    const other = hub.join(second);
    expect(second.text).toBe(viewer.text);
    serial.print('more\n');
    await until(() => second.text.endsWith('more\n') && viewer.text.endsWith('more\n'), 'output to both');
    expect(second.text).toBe(viewer.text);
    expect(hub.viewerCount).toBe(2);
    other.leave();
    session.leave();
    expect(hub.viewerCount).toBe(0);
    await until(() => serial.client?.destroyed === true || serial.client?.readableEnded === true, 'the hub to hang up');
  });

  it('starts a long scroll-back on a line boundary', () => {
    writeFileSync(serial.logPath, 'x'.repeat(100) + '\n' + 'second line\nthird\n');
    const hub = new SerialHub({ socket: serial.socketPath, log: serial.logPath });
    const viewer = new Recorder();
    const session = hub.join(viewer, 15); // the last 15 bytes begin inside "second line"
    expect(viewer.text).toBe('third\n');
    session.leave();
  });

  it('tells its viewers when the console goes away (the instance stopped)', async () => {
    const hubs = new SerialHubs();
    const viewer = new Recorder();
    hubs.join('vm', { socket: serial.socketPath, log: serial.logPath }, SCROLLBACK_BYTES, viewer);
    await until(() => serial.client !== undefined, 'the hub to connect');
    serial.print('bye\n');
    serial.client!.destroy();
    await until(() => viewer.closedWith !== undefined, 'the close');
    expect(viewer.text).toContain('bye\n');
    expect(viewer.closedWith).toMatch(/no longer running/);
    expect(hubs.size).toBe(0);
  });

  it('closes at once when there is no console to connect to', async () => {
    const hubs = new SerialHubs();
    const viewer = new Recorder();
    hubs.join('vm', { socket: join(dir, 'missing.sock'), log: join(dir, 'missing.log') }, SCROLLBACK_BYTES, viewer);
    await until(() => viewer.closedWith !== undefined, 'the close');
    expect(viewer.text).toBe('');
    expect(hubs.size).toBe(0);
  });
});
