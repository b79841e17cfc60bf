import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliChecks } from '../helpers/cli-checks.ts';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { guestRun, readSector, waitForBoot, writeSector } from '../helpers/guest-shell.ts';
import { chainOf, expectImageClean, shape, type SnapshotTreeJson } from '../helpers/snapshots.ts';
import { testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '256M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

interface InfoJson {
  state: string;
  disks: Array<{ id: string; path: string; format: string }>;
}

describe('external (overlay) snapshots: create live and offline, revert, delete with merge, crash repair (tiny guest, TCG)', { timeout: 300_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-snap-ext-');
  afterAll(cleanup);
  const base = join(home, 'instances', 'se', 'disk0.qcow2');
  const volumeFile = join(home, 'pools', 'default', 'vol.raw');
  const overlays = join(home, 'instances', 'se', 'overlays');
  let boots = 0;
  const { ok, refused } = cliChecks(home);
  const sh = (command: string) => guestRun(home, 'se', command);
  const info = async () => JSON.parse(await ok(['info', 'se', '--format', 'json'])) as InfoJson;
  const tops = async () => Object.fromEntries((await info()).disks.map((d) => [d.id, d.path]));
  const tree = async () => JSON.parse(await ok(['snapshot', 'ls', 'se', '--json'])) as SnapshotTreeJson[];
  const booted = async () => waitForBoot(home, 'se', ++boots);
  const write = async (disk: string, volume: string) => {
    expect(await sh(writeSector('/dev/vda', disk))).toBe('written');
    expect(await sh(writeSector('/dev/vdb', volume))).toBe('written');
  };
  const expectData = async (disk: string, volume: string) => {
    expect(await sh(readSector('/dev/vda'))).toBe(disk);
    expect(await sh(readSector('/dev/vdb'))).toBe(volume);
  };
  const overlayFiles = () => (existsSync(overlays) ? readdirSync(overlays).sort() : []);
  /** Every file the disks use is clean, and no overlay file lies around that nothing refers to. */
  const expectConsistent = async (options: { inUse?: boolean } = {}) => {
    const disks = await tops();
    const used = new Set([...chainOf(disks['disk0']!), ...chainOf(disks['disk1']!)]);
    for (const snapshot of await flat()) for (const d of snapshot.disks) for (const f of chainOf(d.file)) used.add(f);
    for (const f of used) if (f.endsWith('.qcow2')) expectImageClean(f, options);
    for (const f of overlayFiles()) expect(used.has(join(overlays, f)), `orphan overlay ${f}`).toBe(true);
  };
  const flat = async () => {
    const out: Array<{ name: string; disks: Array<{ file: string }> }> = [];
    const walk = (nodes: Array<SnapshotTreeJson & { disks: Array<{ file: string }> }>) => nodes.forEach((n) => (out.push(n), walk(n.children as never)));
    walk((await tree()) as never);
    return out;
  };

  it('refuses --quiesce clearly when no guest agent answers, and changes nothing', async () => {
    await ok(['create', 'se', ...bootArgs, '--disk-size', '64M']);
    await ok(['volume', 'create', 'vol', '--size', '16M', '--format', 'raw']);
    await ok(['disk', 'attach', 'se', 'vol']);
    await ok(['start', 'se']);
    await booted();
    await write('E0', 'V0');
    await refused(['snapshot', 'create', 'se', 'q', '--disk-only', '--quiesce'], 5, '--quiesce: no guest agent answered in instance se within 5 s', 'install and start qemu-guest-agent');
    expect(await ok(['snapshot', 'ls', 'se'])).toBe('Instance se has no snapshots\n');
    expect(await tops()).toEqual({ disk0: base, disk1: volumeFile });
    expect(overlayFiles()).toEqual([]);
  });

  it('live: overlays on every disk (raw volume included), revert restarts from the snapshot, delete merges back live', async () => {
    expect(await ok(['snapshot', 'create', 'se', 'e1', '--disk-only'])).toBe('Created external snapshot e1 of se (disks only)\n');
    const afterE1 = await tops();
    expect(chainOf(afterE1['disk0']!)).toEqual([afterE1['disk0'], base]);
    expect(chainOf(afterE1['disk1']!)).toEqual([afterE1['disk1'], volumeFile]);
    await expectConsistent({ inUse: true });
    // The volume is now written through an overlay: operations on it alone are refused with the way out.
    await refused(['volume', 'resize', 'vol', '--size', '32M'], 5, 'writes it through an external snapshot overlay', 'snapshot rm se');
    await refused(['disk', 'detach', 'se', 'vol'], 5, 'snapshots of se include it (e1)');
    // Deleting the instance would lose the volume's writes kept in the overlay in its directory.
    await refused(['delete', '--force', 'se'], 5, 'cannot delete se: volume vol (', 'virtnode snapshot rm se SNAP');
    await refused(['snapshot', 'create', 'se', 'i1'], 5, 'cannot take an internal snapshot of se: it has external snapshots (e1)', '--disk-only');

    await write('E1', 'V1');
    await ok(['snapshot', 'create', 'se', 'e2', '--disk-only']);
    await write('E2', 'V2');
    expect(shape(await tree())).toEqual([['e1', ['e2']]]);

    const reverted = await ok(['snapshot', 'revert', 'se', 'e1']);
    expect(reverted).toContain('the instance was restarted');
    await booted();
    await expectData('E0', 'V0');
    expect((await info()).state).toBe('running');
    await expectConsistent({ inUse: true });
    const t = await tree();
    expect(t[0]!.current).toBe(true);

    await write('E3', 'V3');
    await refused(['snapshot', 'rm', 'se', 'e1'], 5, 'is the base of 2 branches', 'delete the snapshot(s) on the other branch first (e2)');
    await ok(['snapshot', 'revert', 'se', 'e2']);
    await booted();
    await expectData('E1', 'V1');
    await ok(['snapshot', 'revert', 'se', 'e1']);
    await booted();
    await expectData('E0', 'V0');
    await write('E3', 'V3');

    expect(await ok(['snapshot', 'rm', 'se', 'e2'])).toContain('Deleted snapshot e2 of se');
    await expectConsistent({ inUse: true });
    const merged = await ok(['snapshot', 'rm', 'se', 'e1']);
    expect(merged).toContain('live (block-commit)');
    expect(await tops()).toEqual({ disk0: base, disk1: volumeFile });
    expect(overlayFiles()).toEqual([]);
    await expectData('E3', 'V3');
    await expectConsistent({ inUse: true });
  });

  it('stopped: overlays made, reverted and merged with qemu-img', async () => {
    await ok(['stop', '--force', 'se']);
    expect(await ok(['snapshot', 'create', 'se', 's1', '--external'])).toBe('Created external snapshot s1 of se (disks only)\n');
    await expectConsistent();
    await ok(['start', 'se']);
    await booted();
    await write('E4', 'V4');
    await ok(['stop', '--force', 'se']);
    expect(await ok(['snapshot', 'revert', 'se', 's1'])).toBe('Reverted se to snapshot s1\n');
    await expectConsistent();
    await ok(['start', 'se']);
    await booted();
    await expectData('E3', 'V3');
    await write('E5', 'V5');
    await ok(['stop', '--force', 'se']);
    expect(await ok(['snapshot', 'rm', 'se', 's1'])).toContain('(qemu-img commit)');
    expect(await tops()).toEqual({ disk0: base, disk1: volumeFile });
    expect(overlayFiles()).toEqual([]);
    await expectConsistent();
    await ok(['start', 'se']);
    await booted();
    await expectData('E5', 'V5');
  });

  it('a crash at any step is repaired: spec follows QEMU, no orphan overlay, interrupted delete finished', async () => {
    // Killed after QEMU switched to the new overlays but before anything was recorded.
    const crashed = await virtnode(home, ['snapshot', 'create', 'se', 'c1', '--disk-only'], { env: { VIRTNODE_FAILPOINT: 'snapshot.after-take' } });
    expect(crashed.signal).toBe('SIGKILL');
    const report = await ok(['reconcile']);
    expect(report).toContain('se: disk chain updated to what QEMU uses');
    expect(report).toContain('se: snapshot c1 was taken before a crash; recorded');
    expect(shape(await tree())).toEqual(['c1']);
    expect(chainOf((await tops())['disk0']!)[1]).toBe(base);
    await write('E6', 'V6');
    await expectConsistent({ inUse: true });

    // Killed after making the revert's overlays, before the spec pointed at them.
    await ok(['stop', '--force', 'se']);
    const before = await tops();
    const crashedRevert = await virtnode(home, ['snapshot', 'revert', 'se', 'c1'], { env: { VIRTNODE_FAILPOINT: 'revert.after-overlay' } });
    expect(crashedRevert.signal).toBe('SIGKILL');
    expect(overlayFiles().length).toBe(4);
    const repaired = await ok(['reconcile']);
    expect(repaired).toContain('an interrupted revert to c1 left the disks as they were');
    expect(repaired).toContain('removed orphan overlay');
    expect(await tops()).toEqual(before);
    await expectConsistent();

    // Killed after marking the delete, before the merge.
    await ok(['start', 'se']);
    await booted();
    const crashedRm = await virtnode(home, ['snapshot', 'rm', 'se', 'c1'], { env: { VIRTNODE_FAILPOINT: 'snapshot-rm.after-mark' } });
    expect(crashedRm.signal).toBe('SIGKILL');
    expect(await ok(['reconcile'])).toContain('se: finished deleting snapshot c1');
    expect(await tops()).toEqual({ disk0: base, disk1: volumeFile });
    expect(overlayFiles()).toEqual([]);
    await expectData('E6', 'V6');
    await ok(['delete', '--force', 'se']);
    await ok(['volume', 'rm', 'vol']);
  });
});
