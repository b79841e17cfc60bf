/**
 * Warm launches on the real Debian image with real cloud-init: a template made with --warm, then three warm
 * launches of it. Each loads the template's saved memory, yet right after its launch the three share no identity
 * and no random state: machine-id, SSH host keys, MAC, hostname, instance-id and 64 bytes read from /dev/urandom
 * are pairwise distinct; every check goes through SSH with strict host key checking (virtnode exec), against the
 * host keys virtnode generated and recorded before the launch.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { debianImage } from '../helpers/debian-image.ts';

const LAUNCH_TIMEOUT_MS = 900_000;
const WARM = ['warm-a', 'warm-b', 'warm-c'] as const;

interface Info {
  instanceId: string;
  nics: Array<{ mac: string }>;
  ssh: { hostKeyFingerprints: string[] };
}

interface Observed {
  info: Info;
  launchOutput: string;
  machineId: string;
  hostname: string;
  mac: string;
  urandom: string;
  instanceId: string;
  hostKey: string;
  cloudInit: string;
  kernelLog: string;
  /** The guest's clock minus the host's, in seconds, right after the launch. */
  clockSkewS: number;
  /** QEMU's command line (NUL-separated arguments joined by spaces). */
  qemuCmdline: string;
  /** PIDs of the guest's DHCP clients once the launch is done. */
  dhcpClients: string;
}

function pairwiseDistinct(values: string[]): void {
  expect(new Set(values).size, values.join(', ')).toBe(values.length);
}

describe('three warm launches of one template share no identity and no random state', () => {
  const { home, cleanup } = tempHome('virtnode-e2e-warm-');
  const observed: Record<string, Observed> = {};
  let templateInfo: { warm?: { state: string; machine: string; stateBytes: number; accel: string; qemuVersion: string; memoryPadKiB?: number } } = {};

  const ok = async (args: string[], timeoutMs = 300_000) => {
    const r = await virtnode(home, args, { timeoutMs });
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r;
  };
  const vexec = async (name: string, ...command: string[]) => (await ok(['exec', name, '--', ...command])).stdout.trim();

  beforeAll(async () => {
    await ok(['image', 'import', debianImage(), '--name', 'debian-12']);
    await ok(['launch', 'debian-12', '--name', 'warm-src', '--memory', '1G'], LAUNCH_TIMEOUT_MS);
    await ok(['template', 'create', 'warm-src', 'warmtpl', '--warm'], LAUNCH_TIMEOUT_MS);
    templateInfo = JSON.parse((await ok(['template', 'info', 'warmtpl', '--format', 'json'])).stdout) as typeof templateInfo;

    for (const name of WARM) {
      const launched = await ok(['launch', 'warmtpl', '--name', name, '--warm'], LAUNCH_TIMEOUT_MS);
      // Read first, before anything else runs in the guest.
      const urandom = await vexec(name, 'sh', '-c', 'head -c 64 /dev/urandom | od -An -tx1 | tr -d " \\n"');
      const hostBefore = Date.now() / 1000;
      const guestNow = Number(await vexec(name, 'date', '+%s.%N'));
      const clockSkewS = guestNow - (hostBefore + Date.now() / 1000) / 2;
      const pid = readFileSync(join(home, 'instances', name, 'qemu.pid'), 'utf8').trim();
      const qemuCmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      observed[name] = {
        info: JSON.parse((await ok(['info', name, '--format', 'json'])).stdout) as Info,
        launchOutput: launched.stderr,
        urandom,
        machineId: await vexec(name, 'cat', '/etc/machine-id'),
        hostname: await vexec(name, 'hostname'),
        mac: await vexec(name, 'cat', '/sys/class/net/eth0/address'),
        instanceId: await vexec(name, 'cat', '/run/cloud-init/.instance-id'),
        hostKey: (await vexec(name, 'sudo', '-n', 'ssh-keygen', '-l', '-E', 'sha256', '-f', '/etc/ssh/ssh_host_ed25519_key.pub')).split(' ')[1]!,
        cloudInit: await vexec(name, 'cloud-init', 'status', '--long'),
        kernelLog: await vexec(name, 'sudo', '-n', 'dmesg'),
        clockSkewS,
        qemuCmdline,
        dhcpClients: (await virtnode(home, ['exec', name, '--', 'pgrep', '-x', 'dhclient'])).stdout.trim(),
      };
    }
  }, 3 * LAUNCH_TIMEOUT_MS);

  afterAll(async () => {
    for (const name of [...WARM, 'warm-src']) await virtnode(home, ['delete', '--force', name]);
    await virtnode(home, ['template', 'rm', 'warmtpl']);
    cleanup();
  });

  it('the template keeps a warm state, and each launch loaded it instead of booting', () => {
    expect(templateInfo.warm?.machine).toMatch(/^pc-q35-/);
    expect(templateInfo.warm?.stateBytes).toBeGreaterThan(0);
    for (const name of WARM) expect(observed[name]!.launchOutput).toContain('loaded the warm state of warmtpl');
  });

  it("each launch maps the template's saved RAM copy-on-write, and the state file holds only the devices", () => {
    const ram = join(home, 'templates', 'warmtpl', 'warm', 'memory.ram');
    // 1 GiB as asked, and 8 KiB more per RAM block where virtnode pads it (TCG on QEMU < 9.0): recorded with the
    // state, and every launch maps it at that size.
    const padKiB = templateInfo.warm?.memoryPadKiB ?? 0;
    expect(padKiB).toBe(templateInfo.warm?.accel === 'tcg' && /^[0-8]\./.test(templateInfo.warm.qemuVersion) ? 8 : 0);
    expect(statSync(ram).size).toBe(1024 * 1024 ** 2 + padKiB * 1024);
    for (const name of WARM) expect(observed[name]!.qemuCmdline).toContain(`size=${padKiB === 0 ? '1024M' : `${1024 * 1024 + padKiB}K`},mem-path=${ram}`);
    expect(templateInfo.warm?.stateBytes).toBeLessThan(16 * 1024 ** 2);
    for (const name of WARM) expect(observed[name]!.qemuCmdline).toContain(`mem-path=${ram},share=off`);
  });

  it("the guest's clock was set from the host's at the launch (it stood still since the save)", () => {
    for (const name of WARM) expect(Math.abs(observed[name]!.clockSkewS), name).toBeLessThan(5);
  });

  it("the DHCP client ifupdown started keeps running after the first boot's program has ended (it renews the lease)", () => {
    for (const name of WARM) expect(observed[name]!.dhcpClients, name).toMatch(/^\d+$/m);
  });

  it('the guest kernel saw a new VM generation ID and reseeded its random number generator', () => {
    for (const name of WARM) expect(observed[name]!.kernelLog).toContain('crng reseeded due to virtual machine fork');
  });

  it('64 bytes from /dev/urandom right after launch are pairwise distinct', () => {
    for (const name of WARM) expect(observed[name]!.urandom).toMatch(/^[0-9a-f]{128}$/);
    pairwiseDistinct(WARM.map((n) => observed[n]!.urandom));
  });

  it('pairwise distinct machine-ids, hostnames (= names), MACs (= recorded) and instance-ids', () => {
    for (const n of WARM) expect(observed[n]!.machineId).toMatch(/^[0-9a-f]{32}$/);
    pairwiseDistinct(WARM.map((n) => observed[n]!.machineId));
    pairwiseDistinct(WARM.map((n) => observed[n]!.mac));
    pairwiseDistinct(WARM.map((n) => observed[n]!.instanceId));
    for (const n of WARM) {
      expect(observed[n]!.hostname).toBe(n);
      expect(observed[n]!.mac).toBe(observed[n]!.info.nics[0]!.mac);
      expect(observed[n]!.instanceId).toBe(observed[n]!.info.instanceId);
    }
  });

  it('pairwise distinct SSH host keys, each the one virtnode generated (SSH checked it strictly)', () => {
    pairwiseDistinct(WARM.map((n) => observed[n]!.hostKey));
    for (const n of WARM) expect(observed[n]!.info.ssh.hostKeyFingerprints).toContain(observed[n]!.hostKey);
  });

  it("cloud-init's per-instance work is done, from the NoCloud seed, as in a cold launch", () => {
    for (const n of WARM) {
      // The launch took cloud-init's verdict from the first boot's report, and checked SSH against the recorded host key.
      expect(observed[n]!.launchOutput).toMatch(/ssh +127\.0\.0\.1:\d+ \(host key verified\)/);
      expect(observed[n]!.launchOutput).toMatch(/cloud-init +done \(datasource NoCloud\)/);
      expect(observed[n]!.cloudInit).toContain('status: done');
      expect(observed[n]!.cloudInit).toContain('DataSourceNoCloud');
    }
  });
});
