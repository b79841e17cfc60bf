/**
 * Benchmark: where a cold launch of the default Debian image spends its time. Launches it with virtnode (the
 * phases virtnode reports: image, disk, seed, booting, address, SSH, cloud-init), then asks the guest itself:
 * `systemd-analyze` (firmware, loader, kernel, initrd, userspace), the slowest units (`systemd-analyze blame`),
 * the critical chain, and cloud-init's own stages (`cloud-init analyze show`). Writes
 * bench/results/cold-boot-profile-<cpus>cpu.json. Usage (as root, inside a network namespace):
 * node bench/cold-boot-profile.ts [cpus] [image.qcow2 (default: the built debian-12)]
 */
import { tempHome, virtnode } from '../test/helpers/cli.ts';
import { debianImage } from '../test/helpers/debian-image.ts';
import { writeResult } from './results.ts';

const cpus = process.argv[2] ?? '1';
const imageFile = process.argv[3] ?? debianImage();

async function inGuest(home: string, command: string[]): Promise<string> {
  const r = await virtnode(home, ['exec', 'prof', '--', ...command], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`${command.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** "Startup finished in 1.2s (firmware) + 800ms (loader) + 3.1s (kernel) + 2s (initrd) + 40s (userspace) = ..." */
function parseStartup(text: string): Record<string, number> {
  const seconds = (v: string) => {
    let total = 0;
    for (const m of v.matchAll(/([\d.]+)(min|ms|s)/g)) total += Number(m[1]) * (m[2] === 'min' ? 60 : m[2] === 'ms' ? 0.001 : 1);
    return total;
  };
  const phases: Record<string, number> = {};
  for (const m of text.matchAll(/((?:[\d.]+(?:min|ms|s) ?)+) \((\w+)\)/g)) phases[m[2]!] = seconds(m[1]!);
  return phases;
}

async function main(): Promise<void> {
  const { home, cleanup } = tempHome('virtnode-bench-profile-');
  try {
    const imported = await virtnode(home, ['image', 'import', imageFile, '--name', 'debian-12']);
    if (imported.code !== 0) throw new Error(imported.stderr);
    const t0 = performance.now();
    const launched = await virtnode(home, ['launch', 'debian-12', '--name', 'prof', '--cpus', cpus, '--memory', '1G'], { timeoutMs: 900_000 });
    const totalS = (performance.now() - t0) / 1000;
    if (launched.code !== 0) throw new Error(launched.stderr);
    const phases = [...launched.stderr.matchAll(/^\[\s*([\d.]+) s\] (\S+)\s+(.*)$/gm)].map((m) => ({ atS: Number(m[1]), phase: m[2]!, detail: m[3]! }));
    const startup = await inGuest(home, ['systemd-analyze']);
    const blame = (await inGuest(home, ['systemd-analyze', 'blame', '--no-pager'])).split('\n').slice(0, 15).map((l) => l.trim());
    const chain = (await inGuest(home, ['systemd-analyze', 'critical-chain', '--no-pager'])).split('\n').map((l) => l.trimEnd()).filter((l) => l !== '');
    const cloudInit = (await inGuest(home, ['sudo', 'cloud-init', 'analyze', 'show'])).split('\n').filter((l) => /^(Starting stage|Finished stage|Total Time)/.test(l) || /\|`->/.test(l)).slice(0, 60);
    const result = {
      benchmark: 'cold launch of debian-12: where the time goes',
      at: new Date().toISOString(),
      cpus: Number(cpus),
      image: imageFile,
      launchToCloudInitDoneS: totalS,
      virtnodePhases: phases,
      guestStartupS: parseStartup(startup),
      systemdAnalyze: startup.trim(),
      slowestUnits: blame,
      criticalChain: chain,
      cloudInitStages: cloudInit,
    };
    writeResult(`cold-boot-profile-${cpus}cpu`, result);
    console.log(JSON.stringify({ launchToCloudInitDoneS: totalS, guestStartupS: result.guestStartupS, virtnodePhases: phases, slowestUnits: blame.slice(0, 10) }, null, 2));
  } finally {
    await virtnode(home, ['delete', '--force', 'prof']);
    cleanup();
  }
}

await main();
