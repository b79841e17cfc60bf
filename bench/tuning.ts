/**
 * Benchmark: the effect of the tuning knobs virtnode claims help, each measured against the same guest without
 * the knob, interleaved in one run. Writes bench/results/tuning.json. Usage: node bench/tuning.ts [rounds]
 *
 * - free page reporting: the guest fills 256 MiB of tmpfs and deletes it; how much of that memory QEMU's RSS
 *   gives back to the host within 15 s (without the knob, none: the guest keeps the pages).
 * - discard: the guest writes 64 MiB to its disk and discards the whole disk (blkdiscard); how much of the disk
 *   file's allocation is freed (without the knob, none).
 * Other knobs (pinning, NUMA, huge pages, I/O threads, queues) are about isolation and scaling on KVM hosts with
 * many cores; under TCG on 2 cores the guest CPU is the bottleneck, so no speed-up is claimed for them here.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempHome, virtnode, waitForText } from '../test/helpers/cli.ts';
import { SerialShell } from '../test/helpers/serial-shell.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../test/helpers/test-guest.ts';
import { writeResult } from './results.ts';

const rounds = Number(process.argv[2] ?? 3);
const guest = testGuest();
const boot = ['--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];
const MIB = 1024 * 1024;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const { home, cleanup } = tempHome('virtnode-bench-tuning-');

async function ok(args: string[]): Promise<string> {
  const r = await virtnode(home, args);
  if (r.code !== 0) throw new Error(`virtnode ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function boot1(name: string, args: string[]): Promise<{ pid: number; shell: SerialShell }> {
  await ok(['create', name, ...boot, ...args, '--start']);
  const pid = (JSON.parse(await ok(['info', name, '--format', 'json'])) as { pid: number }).pid;
  await waitForText(join(home, 'instances', name, 'console.log'), TEST_GUEST_READY_MARKER, 120_000);
  const shell = await SerialShell.open(join(home, 'instances', name));
  await shell.run('true');
  return { pid, shell };
}

function rss(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

async function memoryReturned(name: string, reporting: boolean): Promise<{ peakMiB: number; returnedMiB: number }> {
  const { pid, shell } = await boot1(name, ['--memory', '512M', ...(reporting ? ['--free-page-reporting'] : [])]);
  try {
    await shell.run('mkdir -p /mnt/t && mount -t tmpfs -o size=300M tmpfs /mnt/t && dd if=/dev/zero of=/mnt/t/f bs=1M count=256 2>/dev/null && sync', 120_000);
    const peak = rss(pid);
    await shell.run('rm /mnt/t/f');
    let lowest = peak;
    for (let waited = 0; waited < 15_000; waited += 500) {
      await sleep(500);
      lowest = Math.min(lowest, rss(pid));
    }
    return { peakMiB: peak / MIB, returnedMiB: (peak - lowest) / MIB };
  } finally {
    shell.close();
    await ok(['delete', '--force', name]);
  }
}

function allocatedBytes(path: string): number {
  return statSync(path).blocks * 512;
}

async function diskFreed(name: string, discard: boolean): Promise<{ writtenMiB: number; freedMiB: number }> {
  const { shell } = await boot1(name, ['--memory', '128M', '--disk-size', '256M', ...(discard ? ['--discard'] : [])]);
  const disk = join(home, 'instances', name, 'disk0.qcow2');
  try {
    const before = allocatedBytes(disk);
    await shell.run('dd if=/dev/zero of=/dev/vda bs=1M count=64 2>/dev/null && sync', 120_000);
    const written = allocatedBytes(disk);
    await shell.run('blkdiscard /dev/vda && sync', 120_000);
    await sleep(1_000);
    return { writtenMiB: (written - before) / MIB, freedMiB: (written - allocatedBytes(disk)) / MIB };
  } finally {
    shell.close();
    await ok(['delete', '--force', name]);
  }
}

async function main(): Promise<void> {
  const memory = { withReporting: [] as number[], without: [] as number[], peakMiB: [] as number[] };
  const disk = { withDiscard: [] as number[], without: [] as number[], writtenMiB: [] as number[] };
  try {
    for (let i = 0; i < rounds; i++) {
      const on = await memoryReturned(`fpr${i}`, true);
      const off = await memoryReturned(`nofpr${i}`, false);
      memory.withReporting.push(on.returnedMiB);
      memory.without.push(off.returnedMiB);
      memory.peakMiB.push(on.peakMiB, off.peakMiB);
      const d = await diskFreed(`discard${i}`, true);
      const n = await diskFreed(`nodiscard${i}`, false);
      disk.withDiscard.push(d.freedMiB);
      disk.without.push(n.freedMiB);
      disk.writtenMiB.push(d.writtenMiB, n.writtenMiB);
    }
  } finally {
    cleanup();
  }
  const result = {
    benchmark: 'tuning knobs: free page reporting and discard, each against the same guest without it',
    rounds,
    at: new Date().toISOString(),
    medianMiB: {
      memoryReturnedWithFreePageReporting: median(memory.withReporting),
      memoryReturnedWithout: median(memory.without),
      diskFreedWithDiscard: median(disk.withDiscard),
      diskFreedWithout: median(disk.without),
    },
    fractionReturned: {
      freePageReporting: median(memory.withReporting) / 256,
      without: median(memory.without) / 256,
      discard: median(disk.withDiscard) / median(disk.writtenMiB),
      withoutDiscard: median(disk.without) / median(disk.writtenMiB),
    },
    samples: { memory, disk },
    notes: 'the guest frees 256 MiB of tmpfs (memory) and discards 64 MiB it wrote (disk); RSS read from /proc/PID/status, allocation from st_blocks of the qcow2 file',
  };
  writeResult('tuning', result);
  console.log(JSON.stringify({ medianMiB: result.medianMiB, fractionReturned: result.fractionReturned }, null, 2));
}

await main();
