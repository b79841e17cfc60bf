/**
 * Benchmark: create + start to "QMP ready and guest running", virtnode against the floor (the same QEMU argv
 * spawned by hand, with a minimal hand-written QMP exchange). Runs interleaved, writes JSON with medians and
 * ratios to bench/results/. Usage: node bench/start-to-qmp-ready.ts [runs]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildArgv } from '../src/qemu/argv.ts';
import { statePaths } from '../src/lib/paths.ts';
import { reconcile } from '../src/app/reconcile.ts';
import { createCoreContext } from '../src/core/context.ts';
import { InstanceService } from '../src/instances/service.ts';
import { runtimePaths } from '../src/instances/runtime.ts';
import { testGuest } from '../test/helpers/test-guest.ts';
import { killQemusUnder, virtnode } from '../test/helpers/cli.ts';
import { qmpStartByHand } from './qmp-by-hand.ts';
import { writeResult } from './results.ts';

const runs = Number(process.argv[2] ?? 10);
const guest = testGuest();
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The floor: spawn QEMU, connect to QMP as soon as it accepts, negotiate, `cont`. */
async function byHand(dir: string): Promise<number> {
  const paths = runtimePaths(dir);
  const argv = buildArgv({
    name: 'floor', uuid: crypto.randomUUID(), smbiosUuid: crypto.randomUUID(), accel: 'tcg', cpus: 1, memoryMiB: 128,
    disks: [], nics: [{ id: 'net0', mac: '52:54:00:aa:bb:cc', backend: { kind: 'user' } }],
    kernel: { path: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline }, paths,
  });
  const t0 = performance.now();
  const child = spawn('qemu-system-x86_64', argv, { detached: true, stdio: 'ignore' });
  child.unref();
  await qmpStartByHand(paths.qmp, 'cont');
  const elapsed = performance.now() - t0;
  child.kill('SIGKILL');
  return elapsed;
}

function timeProcess(program: string, args: string[]): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', () => resolve(performance.now() - t0));
  });
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'virtnode-bench-'));
  const floorDir = join(root, 'floor');
  mkdirSync(floorDir);
  const libHome = join(root, 'lib');
  const cliHome = join(root, 'cli');
  const service = new InstanceService(createCoreContext(statePaths(libHome), { reconcile }));
  const boot = { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline, memory: '128M' };
  // Warm up: page cache, the cached KVM probe verdict, the CLI's first start.
  await byHand(floorDir);
  await service.create({ name: 'warm', ...boot });
  await service.start('warm');
  await service.delete('warm', { force: true });
  await virtnode(cliHome, ['create', 'warm', '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '128M', '--start']);
  await virtnode(cliHome, ['delete', '--force', 'warm']);

  const nodeStart: number[] = [];
  const floor: number[] = [];
  const library: number[] = [];
  const cli: number[] = [];
  for (let i = 0; i < runs; i++) {
    floor.push(await byHand(floorDir));
    nodeStart.push(await timeProcess(process.execPath, ['-e', '0']));
    let t0 = performance.now();
    await service.create({ name: `b${i}`, ...boot });
    await service.start(`b${i}`);
    library.push(performance.now() - t0);
    await service.delete(`b${i}`, { force: true });
    t0 = performance.now();
    const r = await virtnode(cliHome, ['create', `c${i}`, '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline, '--memory', '128M', '--start']);
    cli.push(performance.now() - t0);
    if (r.code !== 0) throw new Error(r.stderr);
    await virtnode(cliHome, ['delete', '--force', `c${i}`]);
  }
  killQemusUnder(root);
  rmSync(root, { recursive: true, force: true });

  const result = {
    benchmark: 'create+start to QMP ready (guest running)',
    runs,
    at: new Date().toISOString(),
    medianMs: { floorByHand: median(floor), virtnodeLibrary: median(library), virtnodeCli: median(cli), bareNodeStart: median(nodeStart) },
    ratioToFloor: {
      virtnodeLibrary: median(library) / median(floor),
      virtnodeCli: median(cli) / median(floor),
      virtnodeCliWithoutNodeStart: (median(cli) - median(nodeStart)) / median(floor),
    },
    samplesMs: { floorByHand: floor, virtnodeLibrary: library, virtnodeCli: cli, bareNodeStart: nodeStart },
    notes: 'virtnodeLibrary: InstanceService.create+start in-process (what the daemon does); virtnodeCli: one `virtnode create --start` process, including Node start-up.',
  };
  writeResult('start-to-qmp-ready', result);
  console.log(JSON.stringify({ medianMs: result.medianMs, ratioToFloor: result.ratioToFloor }, null, 2));
}

await main();
