import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestAgent } from '../../src/qmp/guest-agent.ts';

/** The real qemu-guest-agent, run on the host listening on a UNIX socket: the same protocol a guest speaks. */
describe('guest agent client against the real qemu-ga', () => {
  let dir: string;
  let agentProcess: ChildProcess;
  let socketPath: string;

  beforeAll(async () => {
    if (!existsSync('/usr/sbin/qemu-ga')) throw new Error('qemu-ga is missing: apt-get install qemu-guest-agent');
    dir = mkdtempSync(join(tmpdir(), 'virtnode-qga-'));
    socketPath = join(dir, 'qga.sock');
    agentProcess = spawn('/usr/sbin/qemu-ga', ['-m', 'unix-listen', '-p', socketPath, '-t', dir, '-f', join(dir, 'qga.pid')], { stdio: 'ignore' });
    const deadline = Date.now() + 5_000;
    while (!existsSync(socketPath)) {
      if (Date.now() > deadline) throw new Error('qemu-ga did not create its socket');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  afterAll(() => {
    agentProcess?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('syncs, pings, reports info and the network interfaces', async () => {
    const agent = await GuestAgent.connect(socketPath);
    try {
      await agent.ping();
      const info = await agent.info();
      expect(info.version).toMatch(/^\d+\.\d+/);
      expect(info.commands).toContain('guest-exec');
      const interfaces = await agent.networkInterfaces();
      const lo = interfaces.find((i) => i.name === 'lo');
      expect(lo).toBeDefined();
    } finally {
      agent.close();
    }
  });

  it('runs programs and returns their output and exit code', async () => {
    const agent = await GuestAgent.connect(socketPath);
    try {
      expect(await agent.exec('/bin/echo', ['hi'])).toEqual({ exitCode: 0, stdout: 'hi\n', stderr: '' });
      expect((await agent.exec('/bin/sh', ['-c', 'echo oops >&2; exit 3'])).exitCode).toBe(3);
      expect((await agent.exec('/bin/cat', [], { input: 'from stdin' })).stdout).toBe('from stdin');
      await expect(agent.exec('/nonexistent/program')).rejects.toMatchObject({ code: 'QMP_COMMAND' });
    } finally {
      agent.close();
    }
  });

  it('a second session after the first resyncs cleanly', async () => {
    for (let i = 0; i < 3; i++) {
      const agent = await GuestAgent.connect(socketPath);
      await agent.ping();
      agent.close();
    }
  });

  it('skips stale bytes before the sync sentinel (fake agent with garbage on the line)', async () => {
    const fakeDir = mkdtempSync(join(tmpdir(), 'virtnode-fakeqga-'));
    const path = join(fakeDir, 'qga.sock');
    const server = createServer((socket) => {
      socket.write('{"return": {"stale": "reply from an old session"}}\n garbage');
      socket.on('data', (d) => {
        const text = d.toString('latin1').replace(/^\xff/, '');
        for (const line of text.split('\n').filter(Boolean)) {
          const request = JSON.parse(line) as { execute: string; arguments?: { id: number } };
          if (request.execute === 'guest-sync-delimited') socket.write(Buffer.concat([Buffer.from('junk'), Buffer.from([0xff]), Buffer.from(`{"return": ${request.arguments!.id}}\n`)]));
          else socket.write('{"return": {}}\n');
        }
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const agent = await GuestAgent.connect(path, { timeoutMs: 2_000 });
      await agent.ping();
      agent.close();
      // and an agent that never answers is a clear TIMEOUT
      const silent = createServer(() => {});
      const silentPath = join(fakeDir, 'silent.sock');
      await new Promise<void>((r) => silent.listen(silentPath, r));
      await expect(GuestAgent.connect(silentPath, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'TIMEOUT', hint: expect.stringContaining('qemu-guest-agent') });
      silent.close();
    } finally {
      server.close();
      rmSync(fakeDir, { recursive: true, force: true });
    }
  });
});
