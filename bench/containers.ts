/**
 * Benchmark: system containers against VMs, from the same Debian image in one run. (1) `virtnode launch
 * --container` to cloud-init done, against `virtnode launch` (a VM under this host's accelerator) to cloud-init
 * done: the ratio. (2) 10 containers launched at once, to cloud-init done in all. (3) the memory of N idle
 * containers (default 50; as many as launch within the time budget): the containers' own memory cgroups, and the
 * host's MemAvailable before and after. Writes bench/results/containers.json.
 * Usage (as root, inside a network namespace): node bench/containers.ts [idle-count] [budget-minutes]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempHome, virtnode } from '../test/helpers/cli.ts';
import { debianImage } from '../test/helpers/debian-image.ts';
import { writeResult } from './results.ts';

const idleTarget = Number(process.argv[2] ?? '50');
const budgetMs = Number(process.argv[3] ?? '12') * 60_000;
const PARALLEL = 10;

function memAvailableBytes(): number {
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
}

/** A container's memory as its cgroup counts it (v1 memory controller or the unified hierarchy). */
function containerMemoryBytes(name: string): number | undefined {
  for (const path of [`/sys/fs/cgroup/memory/lxc.payload.${name}/memory.usage_in_bytes`, `/sys/fs/cgroup/lxc.payload.${name}/memory.current`]) {
    try {
      return Number(readFileSync(path, 'utf8').trim());
    } catch {
      // the other hierarchy
    }
  }
  return undefined;
}

async function timed(home: string, args: string[], timeoutMs = 1_800_000): Promise<number> {
  const t0 = performance.now();
  const r = await virtnode(home, args, { timeoutMs });
  if (r.code !== 0) throw new Error(`virtnode ${args.join(' ')}: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const { home, cleanup } = tempHome('virtnode-bench-ct-');
  const names: string[] = [];
  try {
    const imported = await virtnode(home, ['image', 'import', debianImage(), '--name', 'debian-12'], { timeoutMs: 600_000 });
    if (imported.code !== 0) throw new Error(imported.stderr);
    // The first container launch unpacks the image's root filesystem (once per image): timed on its own.
    const partial: Record<string, unknown> = { benchmark: 'system containers against VMs, same Debian image, same run (partial: stages so far)', at: new Date().toISOString() };
    const save = (key: string, value: unknown) => {
      partial[key] = value;
      writeResult('containers', partial); // after each stage, so a stage that fails keeps the ones before it
    };
    const firstContainerS = await timed(home, ['launch', 'debian-12', '--container', '--name', 'ct-first', '--memory', '256M', '--timeout', '900']);
    names.push('ct-first');
    const containerS = await timed(home, ['launch', 'debian-12', '--container', '--name', 'ct-one', '--memory', '256M', '--timeout', '900']);
    names.push('ct-one');
    save('containers', { firstContainerS, containerS });
    const vmS = await timed(home, ['launch', 'debian-12', '--name', 'vm-one', '--memory', '512M', '--timeout', '1500']);
    save('launchToCloudInitDone', { firstContainerS, containerS, vmS, vmOverContainer: vmS / containerS });
    await virtnode(home, ['delete', '--force', 'vm-one'], { timeoutMs: 300_000 });

    const t0 = performance.now();
    const parallel = Array.from({ length: PARALLEL }, (_, i) => `ct-p${i}`);
    const each = await Promise.all(parallel.map((n) => timed(home, ['launch', 'debian-12', '--container', '--name', n, '--memory', '256M', '--timeout', '1500'])));
    const parallelS = (performance.now() - t0) / 1000;
    names.push(...parallel);
    save('parallelLaunch', { count: PARALLEL, allDoneS: parallelS, medianEachS: median(each), slowestS: Math.max(...each) });

    // Idle containers: launched in batches (without waiting for cloud-init) until the target or the budget.
    const memBefore = memAvailableBytes();
    const started = performance.now();
    let n = 0;
    const failed: Array<{ name: string; error: string }> = [];
    while (names.length < idleTarget && performance.now() - started < budgetMs) {
      const batch = Array.from({ length: Math.min(PARALLEL, idleTarget - names.length) }, () => `ct-i${n++}`);
      const outcomes = await Promise.allSettled(batch.map((b) => timed(home, ['launch', 'debian-12', '--container', '--name', b, '--memory', '256M', '--no-wait'])));
      for (const [k, o] of outcomes.entries()) {
        if (o.status === 'fulfilled') names.push(batch[k]!);
        else {
          let log = '';
          try {
            log = readFileSync(join(home, 'instances', batch[k]!, 'lxc.log'), 'utf8').split('\n').filter((l) => / ERROR /.test(l)).slice(0, 3).join(' | ');
          } catch {
            // no log
          }
          failed.push({ name: batch[k]!, error: `${String(o.reason).split('\n').slice(-3).join(' ')} ${log}`.slice(0, 600) });
          names.push(batch[k]!); // deleted with the others
        }
      }
      if (failed.length > 0) break;
    }
    await new Promise((r) => setTimeout(r, 60_000)); // let the last ones settle into idle
    const perContainer = names.map(containerMemoryBytes).filter((b): b is number => b !== undefined);
    const memAfter = memAvailableBytes();
    const running = readdirSync(join(home, 'instances')).length;
    const result = {
      benchmark: 'system containers against VMs, same Debian image, same run',
      at: new Date().toISOString(),
      load: readFileSync('/proc/loadavg', 'utf8').trim(),
      launchToCloudInitDone: { firstContainerS, containerS, vmS, vmOverContainer: vmS / containerS },
      parallelLaunch: { count: PARALLEL, allDoneS: parallelS, medianEachS: median(each), slowestS: Math.max(...each) },
      idle: {
        target: idleTarget,
        reached: names.length - failed.length,
        failed,
        instanceDirs: running,
        // A container whose init exited after a --no-wait launch has no memory cgroup left: this is how many ran at the end.
        withMemoryCgroup: perContainer.length,
        cgroupMemoryTotalMiB: perContainer.reduce((a, b) => a + b, 0) / 2 ** 20,
        cgroupMemoryMedianMiB: median(perContainer) / 2 ** 20,
        hostMemAvailableDropMiB: (memBefore - memAfter) / 2 ** 20,
        hostDropPerLaterContainerMiB: names.length > 2 + PARALLEL ? (memBefore - memAfter) / 2 ** 20 / (names.length - 2 - PARALLEL) : null,
        note: 'the host drop counts only the containers launched after the first 12 (those ran before it was read); cgroup memory includes their page cache',
      },
    };
    writeResult('containers', result);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    for (let i = 0; i < names.length; i += PARALLEL) {
      await Promise.all(names.slice(i, i + PARALLEL).map((n) => virtnode(home, ['delete', '--force', n], { timeoutMs: 300_000 })));
    }
    await virtnode(home, ['delete', '--force', 'vm-one'], { timeoutMs: 300_000 });
    await virtnode(home, ['network', 'rm', 'default']);
    cleanup();
  }
}

await main();
