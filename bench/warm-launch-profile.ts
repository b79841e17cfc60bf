/**
 * Benchmark: where a warm launch spends its time, end to end, in one run. Makes a warm template of the Debian
 * image, then launches it warm with its first boot under cProfile in the guest (VIRTNODE_WARM_PROFILE: slower than
 * an unprofiled launch, so its times say where, not how long), and once more without the profiler. Reports the
 * host's side (the phases virtnode reports: QEMU started from the RAM file, the first boot through the guest
 * agent with each stage, the SSH check), cloud-init's slowest modules and commands, the Python profile (hot spots
 * by own and cumulative time), and the guest's own journal of the SSH check's login (sshd, PAM, logind, the
 * user's systemd). Writes bench/results/warm-launch-profile.json and the pstats text beside it. Usage (as root,
 * inside a network namespace): node bench/warm-launch-profile.ts
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { killQemusUnder, virtnode } from '../test/helpers/cli.ts';
import { debianImage } from '../test/helpers/debian-image.ts';
import { writeResult } from './results.ts';

const TIMEOUT_MS = 1_800_000;

async function cli(home: string, args: string[], env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  const r = await virtnode(home, args, { timeoutMs: TIMEOUT_MS, env });
  if (r.code !== 0) throw new Error(`virtnode ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** The guest's journal of the SSH check's login and the first boot's units, from `since` (epoch seconds) on. */
const LOGIN_JOURNAL = (since: number) =>
  `sudo -n journalctl --no-pager -o short-precise --since @${since} | grep -Ei "sshd|logind|user@|session|pam|ssh|virtnode|startup" | tail -80`;

async function launchOnce(home: string, name: string, env: Record<string, string>): Promise<{ ms: number; execMs: number; phases: string[] }> {
  const t0 = performance.now();
  const launched = await cli(home, ['launch', 'bench-tpl', '--name', name, '--warm'], env);
  const t1 = performance.now();
  await cli(home, ['exec', name, '--', 'true']);
  return { ms: Math.round(t1 - t0), execMs: Math.round(performance.now() - t1), phases: launched.stderr.trim().split('\n') };
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'virtnode-bench-warm-profile-'));
  const home = join(root, 'home');
  const profileDir = join(root, 'profile');
  try {
    await cli(home, ['image', 'import', debianImage(), '--name', 'debian-12']);
    await cli(home, ['launch', 'debian-12', '--name', 'bench-src', '--memory', '1G']);
    await cli(home, ['template', 'create', 'bench-src', 'bench-tpl', '--warm']);

    const since = Math.floor(Date.now() / 1000);
    const profiled = await launchOnce(home, 'prof', { VIRTNODE_WARM_PROFILE: profileDir });
    const journal = (await cli(home, ['exec', 'prof', '--', 'sh', '-c', LOGIN_JOURNAL(since - 5)])).stdout;
    const pamSession = (await cli(home, ['exec', 'prof', '--', 'sh', '-c', 'grep -v "^#" /etc/pam.d/sshd /etc/pam.d/common-session | grep -v ":$"; ls /etc/update-motd.d'])).stdout;
    await cli(home, ['delete', '--force', 'prof']);
    const plain = await launchOnce(home, 'plain', {});
    await cli(home, ['delete', '--force', 'plain']);

    const files = readdirSync(profileDir);
    const pstats = files.length === 0 ? '' : readFileSync(join(profileDir, files[0]!), 'utf8');
    const result = { profiled, plain, journal: journal.trim().split('\n'), pamSession: pamSession.trim().split('\n') };
    writeResult('warm-launch-profile', result);
    writeFileSync('bench/results/warm-launch-profile.pstats.txt', pstats);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n\n${pstats}`);
  } finally {
    await virtnode(home, ['delete', '--force', 'bench-src']).catch(() => {});
    killQemusUnder(home);
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
