/**
 * Benchmark: QEMU's own memory per idle instance (its private resident memory beyond the guest's RAM, as the
 * metric virtnode_instance_memory_overhead_bytes reports it), for virtnode's QEMU and for the smallest QEMU
 * command line by hand, with the same tiny guest, in one run. Under TCG the JIT code buffer is part of it and is
 * reported on its own. Writes bench/results/qemu-overhead.json. Usage: node bench/qemu-overhead.ts [instances]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { guestRamResidentBytes } from '../src/instances/drivers/qemu/metrics.ts';
import { killQemusUnder, tempHome, virtnode } from '../test/helpers/cli.ts';
import { testGuest } from '../test/helpers/test-guest.ts';
import { writeResult } from './results.ts';

const count = Number(process.argv[2] ?? 4);
const MEMORY_MIB = 256;
const SETTLE_MS = 30_000;
const MIB = 1024 * 1024;
const guest = testGuest();
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Overhead {
  overheadMiB: number;
  jitMiB: number;
}

function measure(pid: number): Overhead {
  const smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const anon = Number(/^RssAnon:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
  let jit = 0;
  let inJit = false;
  for (const line of smaps.split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ (\S{4}) /.exec(line);
    if (header !== null) inJit = header[1] === 'rwxp';
    else if (inJit && line.startsWith('Rss:')) jit += Number(/(\d+)/.exec(line)![1]) * 1024;
  }
  return { overheadMiB: (anon - guestRamResidentBytes(smaps, MEMORY_MIB * 1024)) / MIB, jitMiB: jit / MIB };
}

async function main(): Promise<void> {
  const { home, cleanup } = tempHome('virtnode-bench-overhead-');
  const byHandDir = mkdtempSync(join(tmpdir(), 'virtnode-bench-overhead-hand-'));
  const pids: { virtnode: number[]; byHand: number[] } = { virtnode: [], byHand: [] };
  try {
    for (let i = 0; i < count; i++) {
      const r = await virtnode(home, ['create', `idle${i}`, '--memory', `${MEMORY_MIB}M`, '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline, '--start']);
      if (r.code !== 0) throw new Error(r.stderr);
      pids.virtnode.push((JSON.parse((await virtnode(home, ['info', `idle${i}`, '--format', 'json'])).stdout) as { pid: number }).pid);
      // By hand: the least a person would type for the same guest (no monitors, no devices beyond the defaults).
      const child = spawn('qemu-system-x86_64', ['-machine', 'q35,accel=tcg', '-m', `${MEMORY_MIB}M`, '-display', 'none', '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', guest.cmdline, '-serial', 'null', '-name', `${byHandDir}/idle${i}`], { detached: true, stdio: 'ignore' });
      child.unref();
      pids.byHand.push(child.pid!);
    }
    await sleep(SETTLE_MS);
    const virtnodeSamples = pids.virtnode.map(measure);
    const byHandSamples = pids.byHand.map(measure);
    const result = {
      benchmark: "QEMU's own memory per idle instance (RssAnon minus the guest's RAM), virtnode against the smallest QEMU by hand",
      instances: count,
      guestMemoryMiB: MEMORY_MIB,
      settledMs: SETTLE_MS,
      at: new Date().toISOString(),
      medianMiB: {
        virtnode: median(virtnodeSamples.map((s) => s.overheadMiB)),
        virtnodeWithoutJit: median(virtnodeSamples.map((s) => s.overheadMiB - s.jitMiB)),
        byHand: median(byHandSamples.map((s) => s.overheadMiB)),
        byHandWithoutJit: median(byHandSamples.map((s) => s.overheadMiB - s.jitMiB)),
      },
      ratio: { virtnodeToByHand: median(virtnodeSamples.map((s) => s.overheadMiB)) / median(byHandSamples.map((s) => s.overheadMiB)) },
      samples: { virtnode: virtnodeSamples, byHand: byHandSamples },
      notes: 'JIT: the resident part of the TCG code buffer (the rwx mapping), which a KVM host does not have',
    };
    writeResult('qemu-overhead', result);
    console.log(JSON.stringify({ medianMiB: result.medianMiB, ratio: result.ratio }, null, 2));
  } finally {
    for (const pid of pids.byHand) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (let i = 0; i < count; i++) await virtnode(home, ['delete', '--force', `idle${i}`]);
    killQemusUnder(home);
    cleanup();
    rmSync(byHandDir, { recursive: true, force: true });
  }
}

await main();
