/**
 * Benchmark: the tiny test guest's boot to its ready marker, one build against another, interleaved. Each boot is
 * `virtnode create NAME --start` of the build's kernel, initramfs and command line (what the test tier does
 * about 150 times a run); measured are the wall time from the CLI's start to the marker on the console and the
 * CPU time QEMU used until then (steadier than wall time on a shared machine). Ratios are to the first build.
 *
 * Usage: node bench/test-guest-boot.ts RUNS DIR [DIR...]   (each DIR made by scripts/build-test-guest.sh DIR,
 * e.g. one from a checkout before a change and one after it)
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { tempHome, virtnode } from '../test/helpers/cli.ts';
import { TEST_GUEST_READY_MARKER, type TestGuest, testGuest } from '../test/helpers/test-guest.ts';
import { writeResult } from './results.ts';
import { cpuMsOf, median, round } from './whole-process.ts';

const [runsArg, ...dirs] = process.argv.slice(2);
const runs = Number(runsArg);
if (!Number.isInteger(runs) || runs < 1 || dirs.length === 0) {
  console.error('usage: node bench/test-guest-boot.ts RUNS DIR [DIR...]');
  process.exit(2);
}
const BOOT_TIMEOUT_MS = 60_000;
const POLL_MS = 20;

async function bootOnce(home: string, name: string, build: TestGuest): Promise<{ wallMs: number; qemuCpuMs: number }> {
  const t0 = performance.now();
  const created = await virtnode(home, ['create', name, '--memory', '128M', '--kernel', build.kernel, '--initrd', build.initrd, '--cmdline', build.cmdline, '--start']);
  if (created.code !== 0) throw new Error(`virtnode create ${name}: ${created.stderr}`);
  const consoleLog = join(home, 'instances', name, 'console.log');
  const pid = Number(readFileSync(join(home, 'instances', name, 'qemu.pid'), 'utf8').trim());
  for (;;) {
    if (existsSync(consoleLog) && readFileSync(consoleLog, 'utf8').includes(TEST_GUEST_READY_MARKER)) break;
    if (performance.now() - t0 > BOOT_TIMEOUT_MS) throw new Error(`${name}: no ready marker within ${BOOT_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const result = { wallMs: performance.now() - t0, qemuCpuMs: cpuMsOf(pid) };
  const deleted = await virtnode(home, ['delete', '--force', name]);
  if (deleted.code !== 0) throw new Error(`virtnode delete ${name}: ${deleted.stderr}`);
  return result;
}

async function main(): Promise<void> {
  const builds = dirs.map((dir) => testGuest(dir));
  const { home, cleanup } = tempHome('virtnode-bench-tg-');
  try {
    await bootOnce(home, 'warmup', builds[0]!); // page cache, the KVM probe's cached verdict, the CLI's compile cache
    const samples = builds.map(() => ({ wallMs: [] as number[], qemuCpuMs: [] as number[] }));
    for (let i = 0; i < runs; i++) {
      for (const [b, build] of builds.entries()) {
        const r = await bootOnce(home, `g${i}-${b}`, build);
        samples[b]!.wallMs.push(r.wallMs);
        samples[b]!.qemuCpuMs.push(r.qemuCpuMs);
      }
    }
    const first = { wall: median(samples[0]!.wallMs), cpu: median(samples[0]!.qemuCpuMs) };
    const result = {
      runs,
      builds: builds.map((build, b) => {
        const wall = median(samples[b]!.wallMs);
        const cpu = median(samples[b]!.qemuCpuMs);
        return {
          dir: build.dir,
          cmdline: build.cmdline,
          medianWallMs: round(wall),
          medianQemuCpuMs: round(cpu),
          wallRatioToFirst: round(wall / first.wall, 2),
          qemuCpuRatioToFirst: round(cpu / first.cpu, 2),
          wallMs: samples[b]!.wallMs.map((x) => round(x)),
          qemuCpuMs: samples[b]!.qemuCpuMs,
        };
      }),
    };
    writeResult('test-guest-boot', result);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    cleanup();
  }
}

await main();
