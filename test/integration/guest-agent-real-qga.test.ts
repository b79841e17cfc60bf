import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestAgent } from '../../src/qmp/guest-agent.ts';

const QEMU_GA = '/usr/sbin/qemu-ga';
/**
 * The agent runs on the host here, as root in CI: block every command that would act on the host itself
 * (freezing its filesystems, powering it off, changing its clock, users, CPUs or memory).
 */
const BLOCKED_RPCS = [
  'guest-shutdown',
  'guest-suspend-disk',
  'guest-suspend-ram',
  'guest-suspend-hybrid',
  'guest-fsfreeze-freeze',
  'guest-fsfreeze-freeze-list',
  'guest-fstrim',
  'guest-set-time',
  'guest-set-user-password',
  'guest-set-vcpus',
  'guest-set-memory-blocks',
  'guest-ssh-add-authorized-keys',
  'guest-ssh-remove-authorized-keys',
  'guest-file-open',
];

/** The real qemu-guest-agent, run on the host listening on a UNIX socket: the protocol a guest speaks. */
describe('guest agent client against the real qemu-ga', () => {
  let dir: string | undefined;
  let agentProcess: ChildProcess | undefined;
  let socketPath: string;
  let logPath: string;

  beforeAll(async () => {
    if (!existsSync(QEMU_GA)) throw new Error(`${QEMU_GA} is missing: apt-get install qemu-guest-agent`);
    dir = mkdtempSync(join(tmpdir(), 'virtnode-qga-'));
    socketPath = join(dir, 'qga.sock');
    logPath = join(dir, 'qga.log');
    const child = spawn(
      QEMU_GA,
      ['-m', 'unix-listen', '-p', socketPath, '-t', dir, '-f', join(dir, 'qga.pid'), '-l', logPath, '-b', BLOCKED_RPCS.join(',')],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    agentProcess = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const deadline = Date.now() + 5_000;
    while (!existsSync(socketPath)) {
      if (child.exitCode !== null) throw new Error(`qemu-ga exited with ${child.exitCode}: ${stderr}${readLog()}`);
      if (Date.now() > deadline) throw new Error(`qemu-ga did not create its socket within 5 s: ${stderr}${readLog()}`);
      await delay(10);
    }
  });

  afterAll(async () => {
    const child = agentProcess;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  function readLog(): string {
    return existsSync(logPath) ? `\n${readFileSync(logPath, 'utf8')}` : '';
  }

  it('syncs, pings, and reports its version and commands', async () => {
    const started = performance.now();
    const agent = await GuestAgent.connect(socketPath, { timeoutMs: 5_000 });
    const syncMs = performance.now() - started;
    try {
      await agent.ping();
      const info = await agent.info();
      expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(info.commands).toContainEqual({ name: 'guest-exec', enabled: true, successResponse: true });
      expect(info.commands).toContainEqual({ name: 'guest-shutdown', enabled: false, successResponse: false });
      console.log(`qemu-ga ${info.version}: connect + guest-sync-delimited ${syncMs.toFixed(1)} ms`);
    } finally {
      agent.close();
    }
  });

  it('lists the network interfaces: the namespace loopback with 127.0.0.1/8', async () => {
    const agent = await GuestAgent.connect(socketPath, { timeoutMs: 5_000 });
    try {
      const interfaces = await agent.networkGetInterfaces();
      const lo = interfaces.find((i) => i.name === 'lo');
      expect(lo).toBeDefined();
      expect(lo?.ipAddresses).toContainEqual({ type: 'ipv4', address: '127.0.0.1', prefix: 8 });
    } finally {
      agent.close();
    }
  });

  it('runs programs and returns their output and exit code', async () => {
    const agent = await GuestAgent.connect(socketPath, { timeoutMs: 5_000 });
    try {
      const started = performance.now();
      expect(await agent.exec('/bin/echo', ['hi'], { timeoutMs: 10_000 })).toEqual({ exitCode: 0, stdout: 'hi\n', stderr: '' });
      console.log(`qemu-ga exec /bin/echo hi: ${(performance.now() - started).toFixed(1)} ms`);
      expect(await agent.exec('/bin/sh', ['-c', 'exit 3'], { timeoutMs: 10_000 })).toEqual({ exitCode: 3, stdout: '', stderr: '' });
      expect(await agent.exec('/bin/sh', ['-c', 'echo oops >&2; exit 4'], { timeoutMs: 10_000 })).toEqual({ exitCode: 4, stdout: '', stderr: 'oops\n' });
      expect((await agent.exec('/bin/cat', [], { input: 'from stdin ✓', timeoutMs: 10_000 })).stdout).toBe('from stdin ✓');
      expect(await agent.exec('/bin/sh', ['-c', 'kill -9 $$'], { timeoutMs: 10_000 })).toMatchObject({ exitCode: 137, signal: 9 });
      expect(await agent.exec('/nonexistent/program', [], { timeoutMs: 10_000 }).catch((e: unknown) => e)).toMatchObject({ code: 'QMP_COMMAND' });
    } finally {
      agent.close();
    }
  });

  it('reports the freeze state, and a disabled command is QMP_COMMAND CommandNotFound', async () => {
    const agent = await GuestAgent.connect(socketPath, { timeoutMs: 5_000 });
    try {
      expect(await agent.fsfreezeStatus()).toBe('thawed');
      expect(await agent.fsfreezeFreeze().catch((e: unknown) => e)).toMatchObject({ code: 'QMP_COMMAND', qmpClass: 'CommandNotFound' });
      await agent.ping(); // still in step after the refusal
    } finally {
      agent.close();
    }
  });

  it('a session after a client that died mid-request, and several in a row, sync cleanly', async () => {
    const crashed = connect(socketPath);
    await new Promise<void>((resolve, reject) => crashed.once('connect', resolve).once('error', reject));
    crashed.write('{"execute": "guest-exec", "arguments": {"path": "/bin/ec');
    crashed.destroy();
    for (let i = 0; i < 3; i++) {
      const agent = await GuestAgent.connect(socketPath, { timeoutMs: 5_000 });
      await agent.ping();
      agent.close();
      await agent.closed;
    }
  });
});
