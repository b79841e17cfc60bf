import { type AddressInfo, createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseCloudInitResult, waitForSshBanner } from './readiness.ts';

describe('parseCloudInitResult', () => {
  it('a result without errors is done, with the datasource', () => {
    expect(parseCloudInitResult('{"v1": {"datasource": "DataSourceNoCloud [seed=/dev/vdb][dsmode=net]", "errors": []}}\n')).toEqual({
      status: 'done',
      datasource: 'NoCloud',
      detail: 'DataSourceNoCloud [seed=/dev/vdb][dsmode=net]',
    });
  });

  it('errors make it an error, listed in the detail', () => {
    expect(parseCloudInitResult('{"v1": {"datasource": "DataSourceConfigDrive [net,ver=2][source=/dev/sr0]", "errors": ["(\'scripts_user\', RuntimeError(\'1 failed\'))"]}}')).toEqual({
      status: 'error',
      datasource: 'ConfigDrive',
      detail: "DataSourceConfigDrive [net,ver=2][source=/dev/sr0]; ('scripts_user', RuntimeError('1 failed'))",
    });
  });

  it('anything else is unknown, saying what was read', () => {
    expect(parseCloudInitResult('not json')).toMatchObject({ status: 'unknown', datasource: undefined, detail: 'unreadable result.json: not json' });
    expect(parseCloudInitResult('{"v2": {}}').status).toBe('unknown');
  });
});

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
