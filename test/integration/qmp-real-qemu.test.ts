import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cont,
  humanMonitorCommand,
  queryBlock,
  queryBlockstats,
  queryChardev,
  queryCpusFast,
  queryKvm,
  queryStatus,
  queryVersion,
  quit,
  stop,
  systemReset,
} from '../../src/qmp/commands.ts';
import { QmpCommandError, QmpConnection } from '../../src/qmp/connection.ts';

/** QEMU with no guest at all: paused (-S), no devices but one null drive to have something to query. */
const QEMU = 'qemu-system-x86_64';
const baseArgs = (qmpPath: string) => [
  '-machine', 'q35', '-accel', 'tcg', '-nodefaults', '-no-user-config', '-display', 'none', '-S',
  '-qmp', `unix:${qmpPath},server=on,wait=off`,
  '-drive', 'if=none,id=d0,driver=null-co,read-zeroes=on',
];

interface RunningQemu {
  child: ChildProcess;
  qmpPath: string;
  spawnedAt: number;
  stderr: () => string;
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();
const connections = new Set<QmpConnection>();
let dir: string | undefined;
let qemuBinary: string;

function findProgram(name: string): string | undefined {
  for (const d of (process.env['PATH'] ?? '').split(delimiter)) {
    if (d !== '' && existsSync(join(d, name))) return join(d, name);
  }
  return undefined;
}

function startQemu(name: string): RunningQemu {
  const qmpPath = join(dir!, `${name}.qmp`);
  const spawnedAt = performance.now();
  const child = spawn(qemuBinary, baseArgs(qmpPath), { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, qmpPath, spawnedAt, stderr: () => stderr, exited };
}

async function connectTo(qemu: RunningQemu, timeoutMs = 10_000): Promise<QmpConnection> {
  try {
    const qmp = await QmpConnection.connect(qemu.qmpPath, { timeoutMs });
    connections.add(qmp);
    return qmp;
  } catch (e) {
    throw new Error(`QMP connect failed; QEMU stderr: ${qemu.stderr()}`, { cause: e });
  }
}

async function killAll(): Promise<void> {
  for (const c of connections) c.close();
  connections.clear();
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGCONT'); // in case a test left it stopped
        child.kill('SIGKILL');
        await exited;
      }
      children.delete(child);
    }),
  );
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

beforeAll(() => {
  const found = findProgram(QEMU);
  if (found === undefined) throw new Error(`${QEMU} is missing: apt-get install qemu-system-x86`);
  qemuBinary = found;
  dir = mkdtempSync(join(tmpdir(), 'virtnode-qmp-qemu-'));
});
afterEach(killAll);
afterAll(async () => {
  await killAll();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('QMP client against a real QEMU', () => {
  it('connects as soon as QEMU listens: spawn → capabilities negotiated (measured)', async () => {
    const connectMs: number[] = [];
    const roundTripMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const qemu = startQemu(`latency-${i}`);
      const qmp = await connectTo(qemu);
      connectMs.push(performance.now() - qemu.spawnedAt);
      for (let j = 0; j < 50; j++) {
        const t = performance.now();
        await queryStatus(qmp);
        roundTripMs.push(performance.now() - t);
      }
      await killAll();
    }
    console.log(
      `spawn → QMP negotiated: median ${median(connectMs).toFixed(1)} ms, min ${Math.min(...connectMs).toFixed(1)}, max ${Math.max(...connectMs).toFixed(1)} (n=5); ` +
        `query-status round trip: median ${median(roundTripMs).toFixed(3)} ms (n=${roundTripMs.length})`,
    );
    expect(median(connectMs)).toBeLessThan(5_000);
    expect(median(roundTripMs)).toBeLessThan(50);
  });

  it('queries, cont/stop with their events, refusals, a second client is BUSY, quit ends with SHUTDOWN', async () => {
    const qemu = startQemu('lifecycle');
    const qmp = await connectTo(qemu);

    const version = await queryVersion(qmp);
    expect(version.qemu).toEqual(qmp.greeting.version.qemu);
    expect(version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(await queryStatus(qmp)).toEqual({ running: false, status: 'prelaunch' });
    expect((await queryKvm(qmp)).enabled).toBe(false);
    const cpus = await queryCpusFast(qmp);
    expect(cpus).toHaveLength(1);
    expect(cpus[0]).toMatchObject({ 'cpu-index': 0, target: 'x86_64', 'thread-id': expect.any(Number) });
    const [block] = await queryBlock(qmp);
    expect(block).toMatchObject({ device: 'd0', inserted: { drv: 'null-co', ro: false, image: { 'virtual-size': 1024 ** 3 } } });
    expect(await queryBlockstats(qmp)).toContainEqual(expect.objectContaining({ device: 'd0', stats: expect.objectContaining({ rd_bytes: 0, wr_operations: 0 }) }));
    expect(await queryChardev(qmp)).toContainEqual(expect.objectContaining({ filename: expect.stringContaining(qemu.qmpPath), 'frontend-open': true }));
    expect(await humanMonitorCommand(qmp, 'info version')).toContain(`${version.qemu.major}.${version.qemu.minor}.${version.qemu.micro}`);

    const resumed = qmp.waitForEvent(['RESUME'], { timeoutMs: 5_000 });
    await cont(qmp);
    expect(await resumed).toMatchObject({ event: 'RESUME', timestamp: { seconds: expect.any(Number) } });
    expect(await queryStatus(qmp)).toEqual({ running: true, status: 'running' });

    const stopped = qmp.waitForEvent(['STOP'], { timeoutMs: 5_000 });
    await stop(qmp);
    await stopped;
    expect(await queryStatus(qmp)).toEqual({ running: false, status: 'paused' });

    const reset = qmp.waitForEvent(['RESET'], { timeoutMs: 5_000 });
    await systemReset(qmp);
    expect(await reset).toMatchObject({ data: { guest: false } });
    expect(await queryStatus(qmp)).toEqual({ running: false, status: 'prelaunch' }); // a reset while paused goes back to prelaunch

    const unknown = await qmp.execute('no-such-command').catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(QmpCommandError);
    expect(unknown).toMatchObject({ code: 'QMP_COMMAND', qmpClass: 'CommandNotFound', desc: expect.stringContaining('no-such-command') });
    const badArgs = await qmp.execute('query-status', { bogus: 1 }).catch((e: unknown) => e);
    expect(badArgs).toMatchObject({ code: 'QMP_COMMAND', qmpClass: 'GenericError' });

    // QEMU's monitor serves one client: a second one is accepted by the kernel but never greeted.
    const busyStarted = Date.now();
    const busy = await QmpConnection.connect(qemu.qmpPath, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(busy).toMatchObject({ code: 'BUSY', message: expect.stringContaining('did not greet') });
    expect(Date.now() - busyStarted).toBeLessThan(2_000);
    expect((await queryStatus(qmp)).status).toBe('prelaunch'); // the first client is unaffected

    const shutdown = qmp.waitForEvent(['SHUTDOWN'], { timeoutMs: 5_000 });
    await quit(qmp);
    expect(await shutdown).toMatchObject({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
    await qmp.closed;
    expect(qmp.error).toMatchObject({ code: 'QMP_DISCONNECTED' });
    await expect(queryStatus(qmp)).rejects.toMatchObject({ code: 'QMP_DISCONNECTED' });
    expect(await qemu.exited).toBe(0);
  });

  it('kill -9 of QEMU while a command waits: QMP_DISCONNECTED at once', async () => {
    const qemu = startQemu('killed');
    const qmp = await connectTo(qemu);
    const waiting = qmp.waitForEvent(['SHUTDOWN'], { timeoutMs: 30_000 });
    qemu.child.kill('SIGSTOP'); // QEMU cannot answer now
    const pending = queryStatus(qmp, { timeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const killedAt = performance.now();
    qemu.child.kill('SIGKILL');
    const error = await pending.catch((e: unknown) => e);
    const detectMs = performance.now() - killedAt;
    expect(error).toMatchObject({ code: 'QMP_DISCONNECTED' });
    expect(await waiting.catch((e: unknown) => e)).toMatchObject({ code: 'QMP_DISCONNECTED' });
    console.log(`kill -9 → pending command rejected: ${detectMs.toFixed(1)} ms`);
    expect(detectMs).toBeLessThan(1_000);
    await expect(queryStatus(qmp)).rejects.toMatchObject({ code: 'QMP_DISCONNECTED' });
  });
});
