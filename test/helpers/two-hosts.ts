import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProcessIdentity } from '../../src/lib/proc.ts';
import { isOurQemu, killQemu, spawnQemu } from '../../src/qemu/process.ts';
import type { QemuDisk, QemuSpec } from '../../src/qemu/spec.ts';
import { cont } from '../../src/qmp/commands.ts';
import type { QmpConnection } from '../../src/qmp/connection.ts';
import { runtimePaths } from '../../src/instances/runtime.ts';
import { programVersion } from '../../src/host/programs.ts';
import { tcgRamPadKiB } from '../../src/qemu/ram-pad.ts';
import { testGuest } from './test-guest.ts';

/** One simulated host: a network namespace and a state directory of its own. */
export interface Host {
  netns: string;
  address: string;
  stateDir: string;
  /** Runs a program inside the host's namespace (execs in place: the pid is the program's). */
  launcher: string[];
}

export interface TwoHosts {
  a: Host;
  b: Host;
  remove: () => void;
}

/**
 * Two "hosts": network namespaces joined by a veth pair (10.77.N.1 and .2), each with a state directory.
 * Names are unique per call; `remove` is safe after a partial setup and more than once.
 */
export function createTwoHosts(): TwoHosts {
  const id = `${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 3).toString(36)}`;
  const subnet = 1 + Math.floor(Math.random() * 250);
  const root = mkdtempSync(join(tmpdir(), 'virtnode-hosts-'));
  const make = (name: string, octet: number): Host => ({
    netns: `vnhost-${name}-${id}`,
    address: `10.77.${subnet}.${octet}`,
    stateDir: join(root, name),
    launcher: ['ip', 'netns', 'exec', `vnhost-${name}-${id}`],
  });
  const a = make('a', 1);
  const b = make('b', 2);
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const remove = () => {
    for (const host of [a, b]) {
      try {
        ip('netns', 'del', host.netns);
      } catch {
        /* gone already */
      }
    }
    rmSync(root, { recursive: true, force: true });
  };
  try {
    for (const host of [a, b]) {
      mkdirSync(host.stateDir, { recursive: true, mode: 0o700 });
      ip('netns', 'add', host.netns);
      ip('-n', host.netns, 'link', 'set', 'lo', 'up');
    }
    ip('-n', a.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.netns);
    for (const host of [a, b]) {
      ip('-n', host.netns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0');
      ip('-n', host.netns, 'link', 'set', 'eth0', 'up');
    }
  } catch (e) {
    remove();
    throw e;
  }
  return { a, b, remove };
}

export interface SourceVm {
  spec: QemuSpec;
  dir: string;
  qmp: QmpConnection;
  identity: ProcessIdentity;
  kill: () => Promise<void>;
}

/**
 * `mib` MiB and 8 KiB more as one size (the benches' unpadded variants compare it with virtnode's own padding, which
 * says it with QemuSpec `memoryPadKiB`): what a guest moved live while it writes to its memory under TCG needs on
 * QEMU before 9.0 (qemu/ram-pad.ts).
 */
export const tcgMoveSafeMiB = (mib: number): number => mib + 8 / 1024;

/**
 * The tiny test guest running on `host` with a named CPU model (started and resumed); `append`: more words for
 * the guest kernel's command line. Its RAM is padded as virtnode pads its own starts on this QEMU (qemu/ram-pad.ts:
 * before 9.0, TCG loses writes made during a live move to RAM sized in 256 KiB multiples), unless `memoryPadKiB`
 * says otherwise (0: unpadded).
 */
export async function startSourceVm(host: Host, options: { name: string; memoryMiB?: number; memoryPadKiB?: number; disks?: QemuDisk[]; cpuModel?: string; append?: string }): Promise<SourceVm> {
  const guest = testGuest();
  const dir = join(host.stateDir, 'instances', options.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const uuid = crypto.randomUUID();
  const paths = runtimePaths(dir);
  const spec: QemuSpec = {
    name: options.name,
    uuid,
    smbiosUuid: uuid,
    accel: 'tcg',
    cpus: 1,
    memoryMiB: options.memoryMiB ?? 256,
    memoryPadKiB: options.memoryPadKiB ?? (await hostRamPadKiB()),
    disks: options.disks ?? [],
    nics: [{ id: 'net0', mac: `52:54:00:${[0, 0, 0].map(() => Math.floor(Math.random() * 256).toString(16).padStart(2, '0')).join(':')}`, backend: { kind: 'user' } }],
    kernel: { path: guest.kernel, initrd: guest.initrd, cmdline: options.append === undefined ? guest.cmdline : `${guest.cmdline} ${options.append}` },
    tuning: { cpuModel: options.cpuModel ?? 'qemu64' },
    paths,
  };
  const spawned = await spawnQemu(spec, { logPath: paths.qemuLog, launcher: host.launcher });
  await cont(spawned.qmp);
  return {
    spec,
    dir,
    qmp: spawned.qmp,
    identity: spawned.identity,
    kill: async () => {
      spawned.qmp.close();
      if (isOurQemu(spawned.identity, uuid)) await killQemu(spawned.identity);
    },
  };
}

/** The padding virtnode gives a TCG start on this host's QEMU. */
async function hostRamPadKiB(): Promise<number> {
  const qemu = await programVersion('qemu-system-x86_64');
  return tcgRamPadKiB({ accel: 'tcg', qemuVersion: qemu.state === 'ok' ? qemu.version : '', hugepages: false });
}

/** Every live process whose command line carries `-uuid UUID`. */
export function qemuPidsFor(uuid: string): number[] {
  let out = '';
  try {
    out = execFileSync('pgrep', ['-f', '--', `-uuid ${uuid}`], { encoding: 'utf8' });
  } catch {
    return [];
  }
  return out.split('\n').filter((l) => l.trim() !== '').map(Number);
}

/** The `TICK n` counter lines of the guest's dirtying loop, across the consoles it printed to, in order. */
export function ticks(...consoleLogs: string[]): number[] {
  const text = consoleLogs
    .map((p) => {
      try {
        return readFileSync(p, 'utf8');
      } catch {
        return '';
      }
    })
    .join('');
  return [...text.matchAll(/TICK (\d+) /g)].map((m) => Number(m[1]));
}
