import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devicePlacement } from '../../src/qemu/placement.ts';
import { qomGet } from '../../src/qmp/commands.ts';
import { QmpConnection } from '../../src/qmp/connection.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, destroyKeepingLogs, instanceDirOn, listOn, localRecord, ok, sharedDirCluster } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { ConsoleCounter } from '../helpers/console-counter.ts';

/**
 * A live move of a VM with devices plugged while it ran (simulated hosts in netns, real daemons and etcd, the tiny
 * guest): two NICs hot-plugged on a bridged network and the first detached again, so the second sits on a PCIe
 * hot-plug port that is neither its cold place nor the first free port. The target's QEMU has it on the same port
 * (asked of both QEMUs), with its MAC; the guest's counter goes on; the source keeps nothing. A volume attached
 * live (on a shared-dir pool) is refused naming disks, nothing changed.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait', '--cpu-model', 'qemu64', '--pool', 'shared'];

/** Each device's bus in the QEMU of the instance in `dir` (its query monitor). */
async function placementIn(dir: string): Promise<Map<string, string>> {
  // `bus:devfn`
  const qmp = await QmpConnection.connect(join(dir, 'qmp-query.sock'), { timeoutMs: 5_000 });
  try {
    return new Map([...(await devicePlacement(qmp))].map(([id, p]) => [id, `${p.bus}:${p.devfn}`]));
  } finally {
    qmp.close();
  }
}

async function macIn(dir: string, device: string): Promise<string> {
  const qmp = await QmpConnection.connect(join(dir, 'qmp-query.sock'), { timeoutMs: 5_000 });
  try {
    return await qomGet<string>(qmp, { path: device, property: 'mac' });
  } finally {
    qmp.close();
  }
}

describe('live move of a VM with hot-plugged NICs (netns hosts, bridged network, shared-dir pool, tiny guest)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  const counter = new ConsoleCounter();
  const shared = mkdtempSync(join(tmpdir(), 'virtnode-move-hotplug-'));
  const pool = join(shared, 'pool');

  beforeAll(async () => {
    sim = await sharedDirCluster(shared, 6);
    h = sim.hosts;
    for (const x of h.slice(0, 2)) {
      sim.bridgeOnSwitch(x, 'lan0');
      await ok(x, ['pool', 'create', 'shared', '--type', 'shared-dir', '--path', pool]);
    }
    await ok(h[0]!, ['network', 'create', 'lan', '--bridge', 'lan0']);
    await eventually(async () => ((await ok(h[1]!, ['network', 'ls'])).includes('lan') ? true : undefined), 20_000, 'lan defined on h2');
  }, 180_000);
  afterAll(async () => {
    counter.release();
    await destroyKeepingLogs(sim, 'cluster-move-hotplug');
    rmSync(shared, { recursive: true, force: true });
  });

  it('a NIC plugged live stays on its hot-plug port across the move; the MAC, the guest and its counter go on; an attached volume is refused', async () => {
    const [h1, h2] = h as [SimHost, SimHost];
    await ok(h1, ['launch', 'tiny', '--name', 'hp', ...LAUNCH, '--target', 'h1']);
    await counter.start(instanceDirOn(h1, 'hp'));
    // NIC 1 on hotplug0, NIC 2 on hotplug1, the volume on hotplug2; then NIC 1 goes: hotplug0 is free, NIC 2 is
    // neither where a cold start nor where a first free port would put it.
    await ok(h1, ['nic', 'attach', 'hp', 'lan']);
    const attached = await ok(h1, ['nic', 'attach', 'hp', 'lan']);
    const mac = /\((([0-9a-f]{2}:){5}[0-9a-f]{2})\)/.exec(attached)![1]!;
    await ok(h1, ['volume', 'create', 'data', '--pool', 'shared', '--size', '16M', '--format', 'raw']);
    expect(await ok(h1, ['disk', 'attach', 'hp', 'data'])).toContain('as disk1 (hot-plugged)');
    await ok(h1, ['nic', 'detach', 'hp', '1']);
    const [pid] = qemuPidsUnder(h1.home);
    const before = await placementIn(instanceDirOn(h1, 'hp'));
    expect([before.get('net2-dev'), before.get('disk1-dev'), before.get('net0-dev'), before.has('net1-dev')]).toEqual(['hotplug1:0', 'hotplug2:0', expect.stringMatching(/^pcie\.0:\d+$/), false]);

    // An attached volume (its record is this host's) does not move: refused naming disks, nothing changed.
    const refused = await h1.cli(['move', 'hp', '--to', 'h2']);
    expect([refused.code, refused.stderr]).toEqual([11, expect.stringContaining("error: disks: disk1 (")]);
    expect([qemuPidsUnder(h1.home), qemuPidsUnder(h2.home), existsSync(instanceDirOn(h2, 'hp'))]).toEqual([[pid], [], false]);
    await ok(h1, ['disk', 'detach', 'hp', 'data']);
    await ok(h1, ['volume', 'rm', 'data']);

    const out = await ok(h1, ['move', 'hp', '--to', 'h2']);
    expect(out).toMatch(/^Moved hp from h1 to h2 in /);
    const dir = instanceDirOn(h2, 'hp');
    const after = await placementIn(dir);
    for (const id of ['disk0-dev', 'net0-dev', 'net2-dev']) expect([id, after.get(id)]).toEqual([id, before.get(id)]);
    expect([after.has('net1-dev'), after.has('disk1-dev')]).toEqual([false, false]);
    expect(await macIn(dir, 'net2-dev')).toBe(mac);
    const listed = (await listOn(h1)).find((i) => i.name === 'hp');
    expect([listed?.host, listed?.state]).toEqual(['h2', 'running']);
    expect(listed?.nics.map((n) => [n.index, n.mac])).toEqual([[0, expect.any(String)], [2, mac]]);
    await counter.goesOn(dir);
    console.log(`placement kept across the move: net2-dev on ${after.get('net2-dev')}, net0-dev on ${after.get('net0-dev')}`);

    // The source keeps nothing.
    expect(qemuPidsUnder(h1.home)).toEqual([]);
    expect(existsSync(instanceDirOn(h1, 'hp'))).toBe(false);
    expect(localRecord(h1, 'hp')).toBeUndefined();
    counter.release();
    await ok(h2, ['delete', 'hp', '--force']);
  }, 300_000);
});
