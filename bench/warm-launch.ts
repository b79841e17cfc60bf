/**
 * Benchmark: warm launch against cold launch of the same template, in one run, interleaved. A Debian 12 template
 * is made with `template create --warm`; each run then launches it warm (`--warm`: the saved memory loaded, the
 * first boot finished through the guest agent) and cold (`--cold`: a boot), each as one `virtnode launch` CLI
 * process to cloud-init done, followed by one `virtnode exec` over SSH with strict host key checking that reads
 * the identity (machine-id, hostname, MAC, ed25519 host key, 64 bytes of /dev/urandom). The time counted ends
 * when that SSH answer is in and checked (the host key virtnode generated, the MAC it recorded, the hostname);
 * warm identities must be pairwise distinct. JSON with medians and the cold/warm ratio to
 * bench/results/warm-launch.json. Usage (as root, in a network namespace): node bench/warm-launch.ts [runs] [cpus]
 * (the template's vCPUs, default 1; every launch of the run has as many).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { killQemusUnder, virtnode } from '../test/helpers/cli.ts';
import { debianImage } from '../test/helpers/debian-image.ts';
import { writeResult } from './results.ts';

const runs = Number(process.argv[2] ?? 1);
const cpus = String(Number(process.argv[3] ?? 1));
const TIMEOUT_MS = 1_800_000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function cli(home: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await virtnode(home, args, { timeoutMs: TIMEOUT_MS });
  if (r.code !== 0) throw new Error(`virtnode ${args.join(' ')}: ${r.stderr}`);
  return r;
}

interface Identity {
  machineId: string;
  hostname: string;
  mac: string;
  hostKey: string;
  urandom: string;
}

const IDENTITY_SCRIPT =
  'cat /etc/machine-id; hostname; cat /sys/class/net/eth0/address; ' +
  'sudo -n ssh-keygen -l -E sha256 -f /etc/ssh/ssh_host_ed25519_key.pub | cut -d" " -f2; head -c 64 /dev/urandom | od -An -tx1 | tr -d " \\n"';

/** Launches `name` and reads its identity over SSH (strict host key checking), checked against virtnode's record. */
async function launchToVerifiedSsh(home: string, name: string, mode: '--warm' | '--cold'): Promise<{ ms: number; phases: string[]; identity: Identity }> {
  const t0 = performance.now();
  const launched = await cli(home, ['launch', 'bench-tpl', '--name', name, mode, '--cpus', cpus]);
  const out = (await cli(home, ['exec', name, '--', 'sh', '-c', IDENTITY_SCRIPT])).stdout.trim().split('\n');
  const ms = performance.now() - t0;
  const [machineId, hostname, mac, hostKey, urandom] = out as [string, string, string, string, string];
  const info = JSON.parse((await cli(home, ['info', name, '--format', 'json'])).stdout) as { nics: Array<{ mac: string }>; ssh: { hostKeyFingerprints: string[] } };
  if (hostname !== name || mac !== info.nics[0]!.mac || !info.ssh.hostKeyFingerprints.includes(hostKey) || !/^[0-9a-f]{32}$/.test(machineId) || !/^[0-9a-f]{128}$/.test(urandom ?? '')) {
    throw new Error(`${name}: identity not as virtnode recorded it: ${JSON.stringify({ out, info })}`);
  }
  return { ms, phases: launched.stderr.trim().split('\n'), identity: { machineId, hostname, mac, hostKey, urandom } };
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'virtnode-bench-warm-'));
  const home = join(root, 'home');
  try {
    await cli(home, ['image', 'import', debianImage(), '--name', 'debian-12']);
    const s0 = performance.now();
    await cli(home, ['launch', 'debian-12', '--name', 'bench-src', '--memory', '1G', '--cpus', cpus]);
    const sourceLaunchMs = performance.now() - s0;
    const t0 = performance.now();
    const made = await cli(home, ['template', 'create', 'bench-src', 'bench-tpl', '--warm']);
    const templateWarmMs = performance.now() - t0;
    const template = JSON.parse((await cli(home, ['template', 'info', 'bench-tpl', '--format', 'json'])).stdout) as { warm: { stateBytes: number; bootMs: number } };

    const warm: number[] = [];
    const cold: number[] = [];
    const identities: Identity[] = [];
    const phases: Record<string, string[]> = {};
    for (let i = 0; i < runs; i++) {
      for (const mode of ['--warm', '--cold'] as const) {
        const name = `${mode.slice(2)}-${i}`;
        const r = await launchToVerifiedSsh(home, name, mode);
        (mode === '--warm' ? warm : cold).push(r.ms);
        if (mode === '--warm') identities.push(r.identity);
        phases[name] = r.phases;
        process.stderr.write(`${name}: ${(r.ms / 1000).toFixed(1)} s\n`);
        await cli(home, ['delete', '--force', name]);
      }
    }
    for (const key of ['machineId', 'mac', 'hostKey', 'urandom', 'hostname'] as const) {
      if (new Set(identities.map((x) => x[key])).size !== identities.length) throw new Error(`warm launches share a ${key}`);
    }
    const result = {
      runs,
      cpus: Number(cpus),
      note: 'launch to verified SSH: one `virtnode launch` to cloud-init done, then one `virtnode exec` (SSH, strict host key) reading the identity',
      warmLaunchMs: { median: Math.round(median(warm)), samples: warm.map(Math.round) },
      coldLaunchMs: { median: Math.round(median(cold)), samples: cold.map(Math.round) },
      coldOverWarm: Number((median(cold) / median(warm)).toFixed(2)),
      template: { sourceLaunchMs: Math.round(sourceLaunchMs), createWarmMs: Math.round(templateWarmMs), warmBootMs: template.warm.bootMs, stateBytes: template.warm.stateBytes, phases: made.stderr.trim().split('\n') },
      phases,
    };
    writeResult('warm-launch', result);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await virtnode(home, ['delete', '--force', 'bench-src']).catch(() => {});
    killQemusUnder(home);
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
