import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConsoleNetworkWatch, waitForSshBanner } from './ssh-probe.ts';

describe('waitForSshBanner', () => {
  /**
   * A loopback server that answers no connection before `delayMs` from now (an sshd busy starting, its listen
   * backlog filling), then each with an SSH banner; it counts the connections it took.
   */
  async function slowSshd(delayMs: number): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
    let connections = 0;
    const readyAt = Date.now() + delayMs;
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      connections += 1;
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
      setTimeout(() => socket.end('SSH-2.0-OpenSSH_9.2\r\n'), Math.max(readyAt - Date.now(), 0));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    return {
      port,
      connections: () => connections,
      close: async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  }

  it('a held probe waits for a slow sshd on one connection; blind probes give up and connect again', async () => {
    const held = await slowSshd(800);
    let blind: Awaited<ReturnType<typeof slowSshd>> | undefined;
    try {
      await waitForSshBanner(held.port, Date.now() + 10_000, { mode: () => 'hold', blindTimeoutMs: 200, pollMs: 50 });
      expect(held.connections()).toBe(1);
      blind = await slowSshd(800);
      await waitForSshBanner(blind.port, Date.now() + 10_000, { mode: () => 'blind', blindTimeoutMs: 200, pollMs: 50 });
      expect(blind.connections()).toBeGreaterThanOrEqual(3);
    } finally {
      await Promise.all([held.close(), blind?.close()]);
    }
  });

  it('does not connect while told to wait, and times out naming SSH', async () => {
    const sshd = await slowSshd(0);
    try {
      await expect(waitForSshBanner(sshd.port, Date.now() + 400, { mode: () => 'wait', pollMs: 50 })).rejects.toThrow(/SSH did not answer/);
      expect(sshd.connections()).toBe(0);
      let calls = 0;
      await waitForSshBanner(sshd.port, Date.now() + 5_000, { mode: () => (++calls < 3 ? 'wait' : 'hold'), pollMs: 50 });
      expect(sshd.connections()).toBe(1);
    } finally {
      await sshd.close();
    }
  });
});

describe('ConsoleNetworkWatch', () => {
  it("sees cloud-init's network stage, also when its line arrives in two pieces, and not the local stage", () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-console-watch-'));
    try {
      const log = join(dir, 'console.log');
      const watch = new ConsoleNetworkWatch(log);
      expect(watch.networkUp()).toBe(false); // no log yet
      writeFileSync(log, "[   25.5] cloud-init[249]: Cloud-init v. 22.4.2 running 'init-local' at Sun, 06 Dec 2026 11:39:07 +0000.\n");
      expect(watch.networkUp()).toBe(false);
      appendFileSync(log, '[   29.8] cloud-init[249]: Cloud-init v. 22.4.2 run');
      expect(watch.networkUp()).toBe(false);
      appendFileSync(log, "ning 'init' at Sun, 06 Dec 2026 11:39:11 +0000. Up 29.79 seconds.\n");
      expect(watch.networkUp()).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sees a login prompt, and reads a rotated log from its start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-console-watch-'));
    try {
      const log = join(dir, 'console.log');
      const watch = new ConsoleNetworkWatch(log);
      writeFileSync(log, 'x'.repeat(4096));
      expect(watch.networkUp()).toBe(false);
      writeFileSync(log, '\nDebian GNU/Linux 12 web-1 ttyS0\n\nweb-1 login: ');
      expect(watch.networkUp()).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
