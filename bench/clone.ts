/**
 * Benchmark: clones. (1) Linked clone of a template with a 1 GiB and a 20 GiB disk, as one `virtnode clone
 * --linked` CLI call each (new identity, seed, host keys included): its time must not grow with the disk size;
 * `qemu-img create -b` by hand on the same disks is the floor. (2) Full clone of the 1 GiB template (768 MiB of
 * data) against the same copy by hand, `qemu-img convert -O qcow2`: throughput and ratio. Interleaved runs, one
 * process; JSON with medians to bench/results/clone.json. Usage (as root): node bench/clone.ts [runs]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { killQemusUnder, virtnode } from '../test/helpers/cli.ts';
import { writeResult } from './results.ts';

const runs = Number(process.argv[2] ?? 5);
const DATA_MIB = 768;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function cli(home: string, args: string[]): Promise<string> {
  const r = await virtnode(home, args, { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`virtnode ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A template whose disk has `size` virtual bytes and DATA_MIB of data (written with qemu-io, not zeros). */
async function makeTemplate(home: string, name: string, size: string): Promise<string> {
  await cli(home, ['create', `${name}-src`, '--disk-size', size]);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0xab 0 ${DATA_MIB}M`, join(home, 'instances', `${name}-src`, 'disk0.qcow2')], { stdio: 'ignore' });
  await cli(home, ['template', 'create', `${name}-src`, name]);
  return (JSON.parse(await cli(home, ['template', 'info', name, '--format', 'json'])) as { disk: string }).disk;
}

function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

async function timedAsync(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'virtnode-bench-clone-'));
  const home = join(root, 'home');
  const disks = { '1G': await makeTemplate(home, 't1g', '1G'), '20G': await makeTemplate(home, 't20g', '20G') };
  const samples = {
    linked1G: [] as number[],
    linked20G: [] as number[],
    overlayByHand1G: [] as number[],
    overlayByHand20G: [] as number[],
    fullClone: [] as number[],
    convertByHand: [] as number[],
    bareCli: [] as number[],
  };
  for (let i = 0; i < runs; i++) {
    samples.bareCli.push(await timedAsync(() => cli(home, ['--version'])));
    samples.linked1G.push(await timedAsync(() => cli(home, ['clone', 't1g', `l1g-${i}`, '--linked'])));
    samples.linked20G.push(await timedAsync(() => cli(home, ['clone', 't20g', `l20g-${i}`, '--linked'])));
    for (const [size, disk] of Object.entries(disks)) {
      const out = join(root, `overlay-${size}-${i}.qcow2`);
      const ms = timed(() => execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', disk, out]));
      (size === '1G' ? samples.overlayByHand1G : samples.overlayByHand20G).push(ms);
      rmSync(out);
    }
    const copy = join(root, `copy-${i}.qcow2`);
    samples.convertByHand.push(timed(() => execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'qcow2', disks['1G'], copy])));
    rmSync(copy);
    samples.fullClone.push(await timedAsync(() => cli(home, ['clone', 't1g', `full-${i}`])));
    await cli(home, ['delete', `full-${i}`]);
  }
  killQemusUnder(root);
  rmSync(root, { recursive: true, force: true });
  const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.round(median(v))])) as Record<keyof typeof samples, number>;
  const mibPerS = (ms: number) => Math.round((DATA_MIB / (ms / 1000)) * 10) / 10;
  const result = {
    benchmark: 'virtnode clone: linked (1 GiB vs 20 GiB template) and full copy (1 GiB template, 768 MiB of data) vs qemu-img by hand',
    runs,
    at: new Date().toISOString(),
    medianMs: m,
    throughputMiBps: { fullClone: mibPerS(m.fullClone), convertByHand: mibPerS(m.convertByHand) },
    ratio: {
      linked20GTo1G: m.linked20G / m.linked1G,
      fullCloneToConvertByHand: m.fullClone / m.convertByHand,
      fullCloneLessCliStartToConvertByHand: (m.fullClone - m.bareCli) / m.convertByHand,
    },
    samplesMs: samples,
    notes:
      'Each virtnode figure is one CLI process (Node start-up included; bareCli is `virtnode --version` alone) that also makes the clone\'s identity: instance record, MAC, SSH host keys (ssh-keygen), cloud-init seed ISO. A template is sealed already, so no clone here boots the sealing appliance.',
  };
  writeResult('clone', result);
  console.log(JSON.stringify({ medianMs: result.medianMs, throughputMiBps: result.throughputMiBps, ratio: result.ratio }, null, 2));
}

await main();
