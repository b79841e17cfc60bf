import { closeSync, constants, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../exec/run.ts';
import { parseCpuList } from '../lib/cpu-list.ts';
import { QEMU_SYSTEM } from './kvm-probe.ts';

/** What this host offers for the tuning knobs (instances/tuning.ts checks requests against it). */
export interface TuningHostFacts {
  onlineCpus: readonly number[];
  /** QEMU's CPU model names, or undefined when QEMU could not be asked. */
  cpuModels: readonly string[] | undefined;
  /** The default huge page size, its free pages, and where hugetlbfs is mounted (undefined: nowhere). */
  hugepages: { pageSizeKiB: number; free: number; mount: string | undefined };
  ioUring: boolean;
  /** The state directory's filesystem takes O_DIRECT (cache modes none and directsync need it). */
  directIo: boolean;
}

export interface KsmFacts {
  /** 0 stopped, 1 merging, 2 unmerging; undefined: the kernel has no KSM. */
  run: number | undefined;
  pagesSharing: number;
}

function readNumber(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Model names from `qemu-system-x86_64 -cpu help` ("x86 NAME  description" lines). */
export function parseCpuModels(help: string): string[] {
  const models: string[] = [];
  for (const line of help.split('\n')) {
    const m = /^x86 +(\S+)/.exec(line);
    if (m !== null) models.push(m[1]!);
  }
  return models;
}

/** hugetlbfs mounts in /proc/self/mounts, the one with the default page size first. */
export function hugetlbfsMount(mounts: string): string | undefined {
  const found = mounts
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'hugetlbfs')
    .map((f) => ({ path: f[1]!.replace(/\\040/g, ' '), defaultSize: !/pagesize=/.test(f[3] ?? '') }));
  return (found.find((m) => m.defaultSize) ?? found[0])?.path;
}

function defaultHugepageKiB(meminfo: string): number {
  const m = /^Hugepagesize:\s+(\d+) kB/m.exec(meminfo);
  return m === null ? 2048 : Number(m[1]);
}

function canOpenDirect(dir: string): boolean {
  const probe = join(dir, `.direct-io-probe-${process.pid}`);
  try {
    closeSync(openSync(probe, constants.O_CREAT | constants.O_WRONLY | constants.O_DIRECT, 0o600));
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { force: true });
  }
}

let cpuModelsMemo: string[] | undefined;

async function cpuModels(): Promise<string[] | undefined> {
  if (cpuModelsMemo !== undefined) return cpuModelsMemo;
  try {
    const { stdout } = await run([QEMU_SYSTEM, '-cpu', 'help'], { timeoutMs: 10_000 });
    cpuModelsMemo = parseCpuModels(stdout);
    return cpuModelsMemo;
  } catch {
    return undefined;
  }
}

/** Gathers the facts; `stateDir` is where disks live (its filesystem decides whether direct I/O works). */
export async function tuningHostFacts(stateDir: string, sysRoot = '/sys'): Promise<TuningHostFacts> {
  const meminfo = (() => {
    try {
      return readFileSync('/proc/meminfo', 'utf8');
    } catch {
      return '';
    }
  })();
  const pageSizeKiB = defaultHugepageKiB(meminfo);
  let mounts = '';
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    /* no /proc: no hugetlbfs known */
  }
  let online: number[] = [];
  try {
    online = parseCpuList('online CPUs', readFileSync(join(sysRoot, 'devices/system/cpu/online'), 'utf8'));
  } catch {
    online = [0];
  }
  return {
    onlineCpus: online,
    cpuModels: await cpuModels(),
    hugepages: { pageSizeKiB, free: readNumber(join(sysRoot, `kernel/mm/hugepages/hugepages-${pageSizeKiB}kB/free_hugepages`)) ?? 0, mount: hugetlbfsMount(mounts) },
    ioUring: (readNumber('/proc/sys/kernel/io_uring_disabled') ?? 0) !== 2,
    directIo: canOpenDirect(stateDir),
  };
}

export function ksmFacts(sysRoot = '/sys'): KsmFacts {
  const dir = join(sysRoot, 'kernel/mm/ksm');
  let present = true;
  try {
    readdirSync(dir);
  } catch {
    present = false;
  }
  return { run: present ? readNumber(join(dir, 'run')) : undefined, pagesSharing: present ? (readNumber(join(dir, 'pages_sharing')) ?? 0) : 0 };
}
