import { spawn, execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const UUID = '11111111-2222-3333-4444-555555555555';
const MAC = '52:54:00:12:34:56';
const READY_TIMEOUT_MS = 60_000;
const EXIT_TIMEOUT_MS = 15_000;

interface Booted {
  qemu: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
  serialLog: string;
  serialSock: string;
  qmpSock: string;
}

let dirs: string[] = [];
let processes: Booted[] = [];
let sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets) s.destroy();
  for (const b of processes) {
    if (b.qemu.exitCode === null && b.qemu.signalCode === null) {
      b.qemu.kill('SIGKILL');
      await b.exited;
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  sockets = [];
  processes = [];
  dirs = [];
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function boot(): Booted {
  const guest = testGuest();
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-tg-'));
  dirs.push(dir);
  const disk = join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  const serialLog = join(dir, 'serial.log');
  const serialSock = join(dir, 'serial.sock');
  const qmpSock = join(dir, 'qmp.sock');
  const argv = [
    '-machine', 'q35', '-accel', 'tcg', '-nodefaults', '-no-user-config', '-display', 'none',
    '-m', '256', '-smp', '1',
    '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', guest.cmdline,
    '-chardev', `socket,id=serial0,path=${serialSock},server=on,wait=off,logfile=${serialLog}`,
    '-serial', 'chardev:serial0',
    '-netdev', 'user,id=n0,restrict=on', '-device', `virtio-net-pci,netdev=n0,mac=${MAC}`,
    '-blockdev', `driver=qcow2,node-name=disk0,file.driver=file,file.filename=${disk}`,
    '-device', 'virtio-blk-pci,drive=disk0',
    '-qmp', `unix:${qmpSock},server=on,wait=off`,
    '-uuid', UUID,
  ];
  const qemu = spawn('qemu-system-x86_64', argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  qemu.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => {
    qemu.on('exit', (code) => resolve(code));
    qemu.on('error', () => resolve(null));
  });
  const booted = { qemu, exited, stderr: () => stderr, serialLog, serialSock, qmpSock };
  processes.push(booted);
  return booted;
}

function running(b: Booted): boolean {
  return b.qemu.exitCode === null && b.qemu.signalCode === null;
}

/** Polls the serial log until `pattern` matches; fails early if QEMU dies. */
async function waitForLog(b: Booted, pattern: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = readLog(b.serialLog);
    if (pattern.test(log)) return log;
    if (!running(b)) throw new Error(`QEMU exited (${b.qemu.exitCode ?? b.qemu.signalCode}): ${b.stderr()}\n${log}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} in the serial log after ${timeoutMs} ms:\n${log}`);
    await sleep(50);
  }
}

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    sockets.push(s);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** A minimal QMP exchange: greeting, qmp_capabilities, then `command`; resolves with the command's reply. */
async function qmp(path: string, command: string): Promise<unknown> {
  const s = await openSocket(path);
  s.setEncoding('utf8');
  const messages: Array<Record<string, unknown>> = [];
  let buffer = '';
  let wake: (() => void) | undefined;
  s.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line !== '') messages.push(JSON.parse(line) as Record<string, unknown>);
    }
    wake?.();
  });
  const next = async (pick: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const i = messages.findIndex(pick);
      if (i >= 0) return messages.splice(i, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`QMP: no reply; got ${JSON.stringify(messages)}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  };
  await next((m) => 'QMP' in m);
  s.write('{"execute":"qmp_capabilities"}\n');
  expect(await next((m) => 'return' in m || 'error' in m)).toEqual({ return: {} });
  s.write(JSON.stringify({ execute: command }) + '\n');
  const reply = await next((m) => 'return' in m || 'error' in m);
  s.end();
  return reply;
}

describe('tiny test guest', () => {
  it('boots to the marker with the given identity, runs a serial shell and powers off on system_powerdown', async () => {
    const b = boot();
    const log = await waitForLog(b, new RegExp(`^${TEST_GUEST_READY_MARKER}\\r?$`, 'm'), READY_TIMEOUT_MS);
    const identity = log.slice(0, log.indexOf(TEST_GUEST_READY_MARKER));
    expect(identity).toMatch(new RegExp(`^uuid=${UUID}\\r?$`, 'm'));
    expect(identity).toMatch(new RegExp(`^macs=(.* )?${MAC}( .*)?\\r?$`, 'm'));
    expect(identity).toMatch(/^disks=vda\r?$/m);
    expect(identity).toMatch(/^cpus=1\r?$/m);

    // The serial console answers: the echoed command line is "echo $((6*7))", the answer a line of its own.
    const serial = await openSocket(b.serialSock);
    serial.write('echo $((6*7))\n');
    await waitForLog(b, /^42\r?$/m, 10_000);
    serial.destroy();

    expect(await qmp(b.qmpSock, 'system_powerdown')).toEqual({ return: {} });
    const code = await Promise.race([b.exited, sleep(EXIT_TIMEOUT_MS).then(() => 'timeout' as const)]);
    expect(code, `QEMU still running ${EXIT_TIMEOUT_MS} ms after system_powerdown`).toBe(0);
    expect(readLog(b.serialLog)).toMatch(/reboot: Power down/);
  });
});
