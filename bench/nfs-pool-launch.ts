/**
 * Benchmark: a tiny-guest launch with its disk on an nfs pool (QEMU's own NFS client, nfs-ganesha in a "storage
 * host" namespace joined by a veth) against the same launch on the local dir pool, interleaved in one run. Each
 * launch is whole CLI processes: `volume create` (qcow2, 64 MiB), `create` (kernel boot), `disk attach`, `start`,
 * then the guest's ready marker on its console; then 16 MiB written to the disk from inside the guest with
 * O_DIRECT. Reports medians and the nfs/dir ratios. Writes bench/results/nfs-pool-launch.json.
 * Usage (as root, in a network namespace): node bench/nfs-pool-launch.ts [runs=5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { killQemusUnder, virtnode } from '../test/helpers/cli.ts';
import { guestRun, waitForBoot } from '../test/helpers/guest-shell.ts';
import { startNfsServer } from '../test/helpers/nfs-server.ts';
import { testGuest } from '../test/helpers/test-guest.ts';
import { median, round } from './whole-process.ts';
import { writeResult } from './results.ts';

const runs = Number(process.argv[2] ?? 5);
const guest = testGuest();
const bootArgs = ['--memory', '256M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

interface Sample {
  volumeCreateMs: number;
  startMs: number;
  launchToReadyMs: number;
  write16MiBMs: number;
}

async function cli(home: string, args: string[]): Promise<void> {
  const r = await virtnode(home, args);
  if (r.code !== 0) throw new Error(`virtnode ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
}

async function launch(home: string, pool: string, name: string): Promise<Sample> {
  const t0 = performance.now();
  await cli(home, ['volume', 'create', name, '--size', '64M', '--pool', pool]);
  const t1 = performance.now();
  await cli(home, ['create', name, ...bootArgs]);
  await cli(home, ['disk', 'attach', name, name]);
  const t2 = performance.now();
  await cli(home, ['start', name]);
  const t3 = performance.now();
  await waitForBoot(home, name, 1, 120_000);
  const t4 = performance.now();
  const out = await guestRun(home, name, 'dd if=/dev/zero of=/dev/vda bs=1M count=16 oflag=direct 2>/dev/null && echo done', 120_000);
  const t5 = performance.now();
  if (out.trim() !== 'done') throw new Error(`the guest's write failed: ${out}`);
  await cli(home, ['delete', '--force', name]);
  await cli(home, ['volume', 'rm', name]);
  return { volumeCreateMs: t1 - t0, startMs: t3 - t2, launchToReadyMs: t4 - t0, write16MiBMs: t5 - t4 };
}

function summary(samples: Sample[]): Record<keyof Sample, number> {
  const keys = Object.keys(samples[0]!) as Array<keyof Sample>;
  return Object.fromEntries(keys.map((k) => [k, round(median(samples.map((s) => s[k])))])) as Record<keyof Sample, number>;
}

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'virtnode-bench-nfs-'));
  const nfs = await startNfsServer({ hostAddress: '10.231.9.1', serverAddress: '10.231.9.2' });
  try {
    await cli(home, ['pool', 'create', 'nfs', '--type', 'nfs', '--source', nfs.source]);
    const dir: Sample[] = [];
    const onNfs: Sample[] = [];
    for (let i = 0; i < runs; i++) {
      // Alternating which goes first, so neither always meets a warmer cache.
      const order = i % 2 === 0 ? (['dir', 'nfs'] as const) : (['nfs', 'dir'] as const);
      for (const kind of order) {
        if (kind === 'dir') dir.push(await launch(home, 'default', `dir${i}`));
        else onNfs.push(await launch(home, 'nfs', `nfs${i}`));
      }
    }
    const d = summary(dir);
    const n = summary(onNfs);
    const ratio = Object.fromEntries((Object.keys(d) as Array<keyof Sample>).map((k) => [k, round(n[k] / d[k])]));
    const result = {
      benchmark: 'nfs-pool-launch',
      date: new Date().toISOString(),
      runs,
      note: 'medians in ms; ratio = nfs / dir (tiny guest, TCG, ganesha 4.3 VFS over a veth on the same machine)',
      dirPool: d,
      nfsPool: n,
      ratio,
      samples: { dir, nfs: onNfs },
    };
    writeResult('nfs-pool-launch', result);
    process.stdout.write(`${JSON.stringify({ dirPool: d, nfsPool: n, ratio }, null, 2)}\n`);
  } finally {
    killQemusUnder(home);
    await nfs.stop();
    rmSync(home, { recursive: true, force: true });
  }
}

await main();
