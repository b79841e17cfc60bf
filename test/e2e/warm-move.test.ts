/**
 * A warm-launched Debian guest moves live between two simulated hosts (netns, real daemons and etcd, TCG): its
 * QEMU has the warm state's device model (pinned machine type, RAM as the backend ram-node0, a VM generation ID,
 * NICs on hot-plug ports), and the target rebuilds the same from the instance's runtime record. On the target
 * the guest runs on with the same identity (machine-id, hostname, MAC), the same generation ID (a move is not a
 * clone: the guest kernel sees no new generation), a file written before the move, and SSH; nothing is left on
 * the source. A restart afterwards is a cold start (the record's warm layout goes) and comes up fine.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VIRTNODE_BIN, qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, createSimHosts, destroyKeepingLogs, formCluster, instanceDirOn, listOn, localRecord, ok } from '../helpers/cluster-hosts.ts';
import { debianImage } from '../helpers/debian-image.ts';

const LONG = ['--timeout', '900'];

interface Runtime {
  accel: string;
  qemuVersion: string;
  memoryPadKiB?: number;
  warm?: { machine: string; vmgenid: string; ramBackend?: boolean };
}

/** `virtnode exec` in the host's namespace (SSH reaches the guest through a port forward on that host's loopback). */
function guestExec(h: SimHost, name: string, ...command: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', h.netns, VIRTNODE_BIN, 'exec', name, '--', ...command], { env: { ...process.env, VIRTNODE_HOME: h.home }, timeout: 120_000 }, (e, stdout, stderr) =>
      e === null ? resolve(stdout.trim()) : reject(new Error(`${h.name}: exec ${command.join(' ')}: ${e.message}\n${stderr}`)),
    );
  });
}

function qemuCmdline(h: SimHost, name: string): string {
  const pid = readFileSync(join(instanceDirOn(h, name), 'qemu.pid'), 'utf8').trim();
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
}

/** A long CLI call (a Debian boot under TCG) that must succeed: its stdout and stderr. */
async function long(x: SimHost, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await x.cli(args, { timeoutMs: 900_000 });
  if (r.code !== 0) throw new Error(`${x.name}: virtnode ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r;
}

const runtimeOf = (h: SimHost, name: string) => (localRecord(h, name) as { spec: { runtime?: Runtime } }).spec.runtime;

describe('a warm-launched Debian guest moves live, keeping its identity and its generation ID', () => {
  let sim: SimCluster;
  let h: SimHost[];

  beforeAll(async () => {
    const image = debianImage();
    sim = await createSimHosts(2);
    h = sim.hosts;
    await Promise.all(h.map((x) => x.startDaemon()));
    await formCluster(h);
    for (const x of h) await ok(x, ['image', 'import', image, '--name', 'debian-12']);
  }, 300_000);
  afterAll(async () => {
    await destroyKeepingLogs(sim, 'warm-move');
  });

  it('warm-launches on h1, moves to h2 live: same machine-id, hostname, MAC, generation ID, files; nothing left on h1; a restart is cold', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    // One Debian boot for the template (a named CPU model: a live move needs one), one for its warm state.
    await long(h1, ['launch', 'debian-12', '--name', 'wsrc', '--memory', '512M', '--cpu-model', 'qemu64', '--target', 'h1', ...LONG]);
    await long(h1, ['template', 'create', 'wsrc', 'wtpl', '--warm']);
    await ok(h1, ['delete', '--force', 'wsrc']);
    const launched = await long(h1, ['launch', 'wtpl', '--name', 'wm', '--warm', '--memory', '512M', '--target', 'h1', ...LONG]);
    expect(launched.stderr + launched.stdout).toContain('loaded the warm state of wtpl');

    const before = runtimeOf(h1, 'wm');
    expect(before?.warm?.machine).toMatch(/^pc-q35-/);
    expect(before?.warm?.ramBackend).toBe(true);
    const sourceCmdline = qemuCmdline(h1, 'wm');
    expect(sourceCmdline).toContain(`guid=${before!.warm!.vmgenid}`);
    expect(sourceCmdline).toContain('memory-backend-file,id=ram-node0');

    const identity = async (x: SimHost) => ({
      machineId: await guestExec(x, 'wm', 'cat', '/etc/machine-id'),
      hostname: await guestExec(x, 'wm', 'hostname'),
      mac: await guestExec(x, 'wm', 'cat', '/sys/class/net/eth0/address'),
    });
    const forks = async (x: SimHost) => (await guestExec(x, 'wm', 'sudo', '-n', 'dmesg')).split('\n').filter((l) => l.includes('crng reseeded due to virtual machine fork')).length;
    const onH1 = await identity(h1);
    expect(onH1.hostname).toBe('wm');
    expect(await forks(h1)).toBe(1);
    await guestExec(h1, 'wm', 'sh', '-c', 'echo before-the-move > ~/note && sync');

    const out = (await long(h1, ['move', 'wm', '--to', 'h2', '--timeout', '900'])).stdout;
    expect(out).toMatch(/^Moved wm from h1 to h2 in /);
    console.log(`warm-launched Debian move h1 -> h2: ${out.split('\n')[0]}`);

    // The target runs the warm layout: the same machine, RAM block (no file there), padding and generation ID.
    expect(runtimeOf(h2, 'wm')).toEqual(before);
    const targetCmdline = qemuCmdline(h2, 'wm');
    expect(targetCmdline).toContain(`-machine ${before!.warm!.machine},`);
    expect(targetCmdline).toContain(`vmgenid,id=vmgenid0,guid=${before!.warm!.vmgenid}`);
    expect(targetCmdline).toMatch(/memory-backend-ram,id=ram-node0,size=\S+/);
    expect(targetCmdline).toContain('bus=hotplug0');
    expect((await listOn(h2)).find((i) => i.name === 'wm')).toMatchObject({ host: 'h2', state: 'running' });
    expect(await identity(h2)).toEqual(onH1);
    expect(await guestExec(h2, 'wm', 'cat', 'note')).toBe('before-the-move');
    // No new generation: the kernel reseeded once, at the warm launch, not at the move.
    expect(await forks(h2)).toBe(1);

    // Nothing of it on h1.
    expect(qemuPidsUnder(h1.home)).toEqual([]);
    expect(existsSync(instanceDirOn(h1, 'wm'))).toBe(false);
    expect(localRecord(h1, 'wm')).toBeUndefined();

    // A restart is a cold start: the warm layout leaves the record, the guest comes back with its identity and files.
    await long(h2, ['restart', 'wm']);
    expect(runtimeOf(h2, 'wm')?.warm).toBeUndefined();
    expect(qemuCmdline(h2, 'wm')).not.toContain('vmgenid');
    const afterRestart = await (async () => {
      const deadline = Date.now() + 600_000;
      for (;;) {
        try {
          return await identity(h2);
        } catch (e) {
          if (Date.now() > deadline) throw e;
          await new Promise((r) => setTimeout(r, 5_000));
        }
      }
    })();
    expect(afterRestart).toEqual(onH1);
    expect(await guestExec(h2, 'wm', 'cat', 'note')).toBe('before-the-move');

    await ok(h2, ['delete', '--force', 'wm']);
    await ok(h1, ['template', 'rm', 'wtpl']);
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
  }, 2_400_000);
});
