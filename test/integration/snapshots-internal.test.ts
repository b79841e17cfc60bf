import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireLock } from '../../src/store/locks.ts';
import { openDb } from '../../src/store/db.ts';
import { cliChecks } from '../helpers/cli-checks.ts';
import { tempHome } from '../helpers/cli.ts';
import { guestRun, readSector, waitForBoot, writeSector } from '../helpers/guest-shell.ts';
import { expectImageClean, internalTags, shape, type SnapshotTreeJson } from '../helpers/snapshots.ts';
import { testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '256M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

describe('internal snapshots: with memory while running, disk-only while stopped (tiny guest, TCG)', { timeout: 300_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-snap-int-');
  afterAll(cleanup);
  const disk = join(home, 'instances', 'si', 'disk0.qcow2');
  let boots = 0;
  const { ok, refused } = cliChecks(home);
  const sh = (command: string) => guestRun(home, 'si', command);
  const tree = async () => JSON.parse(await ok(['snapshot', 'ls', 'si', '--json'])) as SnapshotTreeJson[];
  const booted = async () => waitForBoot(home, 'si', ++boots);

  it('refuses internal snapshots of a raw disk, with the reason and the alternative', async () => {
    await ok(['create', 'si', ...bootArgs, '--disk-size', '64M', '--start']);
    await ok(['volume', 'create', 'scratch', '--size', '8M', '--format', 'raw']);
    await booted();
    await ok(['disk', 'attach', 'si', 'scratch']);
    await refused(['snapshot', 'create', 'si', 'm'], 5, 'cannot take a snapshot with memory state of si: disk disk1 (volume scratch) is raw', 'hint: take an external disk-only snapshot');
    await ok(['stop', '--force', 'si']);
    await refused(['snapshot', 'create', 'si', 'd'], 5, 'cannot take an internal snapshot of si: disk disk1 (volume scratch) is raw', '--external while stopped');
    await ok(['disk', 'detach', 'si', 'scratch']);
    expect(await ok(['snapshot', 'ls', 'si'])).toBe('Instance si has no snapshots\n');
    expect(internalTags(disk)).toEqual([]);
  });

  it('snapshot with memory, revert restores disk and memory, a tree forms, delete works live', async () => {
    await ok(['start', 'si']);
    await booted();
    expect(await sh(writeSector('/dev/vda', 'STATE-A'))).toBe('written');
    await sh('echo MEM-A > /run/marker');
    expect(await ok(['snapshot', 'create', 'si', 'a'])).toBe('Created internal snapshot a of si with memory state\n');
    expectImageClean(disk, { inUse: true });

    expect(await sh(writeSector('/dev/vda', 'STATE-B'))).toBe('written');
    await sh('echo MEM-B > /run/marker');
    await ok(['snapshot', 'create', 'si', 'b']);
    await refused(['snapshot', 'create', 'si', 'a'], 4, 'instance si already has a snapshot a');
    await refused(['snapshot', 'create', 'si', 'q', '--quiesce'], 2, '--quiesce: a snapshot with memory state already holds', '--disk-only --quiesce');

    const reverted = await ok(['snapshot', 'revert', 'si', 'a']);
    expect(reverted).toContain('memory and disks restored');
    expect(await sh(readSector('/dev/vda'))).toBe('STATE-A');
    expect(await sh('cat /run/marker')).toBe('MEM-A'); // the guest's memory (a tmpfs file) came back too
    expect(JSON.parse(await ok(['info', 'si', '--format', 'json'])).state).toBe('running');
    expectImageClean(disk, { inUse: true });

    await ok(['snapshot', 'create', 'si', 'c']);
    const t = await tree();
    expect(shape(t)).toEqual([['a', ['b', 'c']]]);
    expect(t[0]!.memory).toBe(true);
    expect(t[0]!.children.find((n) => n.name === 'c')!.current).toBe(true);
    expect(Date.parse(t[0]!.createdAt)).toBeGreaterThan(Date.now() - 10 * 60_000);
    const table = await ok(['snapshot', 'ls', 'si']);
    expect(table).toMatch(/^a +internal +yes/m);
    expect(table).toMatch(/^├─ b +internal +yes/m);
    expect(table).toMatch(/^└─ c +internal +yes .*current$/m);
    expect(internalTags(disk)).toEqual(['a', 'b', 'c']);

    // Internal snapshots are independent inside the file: one with children can go, they move up.
    expect(await ok(['snapshot', 'rm', 'si', 'a'])).toContain('Deleted snapshot a of si');
    expect(shape(await tree())).toEqual(['b', 'c']);
    expect(internalTags(disk)).toEqual(['b', 'c']);
    expectImageClean(disk, { inUse: true });
    await ok(['snapshot', 'revert', 'si', 'b']);
    expect(await sh(readSector('/dev/vda'))).toBe('STATE-B');
    expect(await sh('cat /run/marker')).toBe('MEM-B');
  });

  it('a revert is refused at once while another operation holds the instance', async () => {
    const db = openDb(join(home, 'virtnode.db'));
    const release = await acquireLock(db, 'si', 'a long test operation');
    try {
      await refused(['snapshot', 'revert', 'si', 'b'], 6, 'instance si is busy: a long test operation by process');
    } finally {
      release();
      db.close();
    }
    expect(await sh(readSector('/dev/vda'))).toBe('STATE-B');
  });

  it('stopped: disk-only snapshots with qemu-img, revert and delete offline', async () => {
    await ok(['stop', '--force', 'si']);
    expect(await ok(['snapshot', 'create', 'si', 'd'])).toBe('Created internal snapshot d of si (disks only)\n');
    expectImageClean(disk);
    await ok(['start', 'si']);
    await booted();
    expect(await sh(readSector('/dev/vda'))).toBe('STATE-B');
    expect(await sh(writeSector('/dev/vda', 'STATE-AFTER-D'))).toBe('written');
    // A running instance goes back to a disk-only snapshot by a restart, and says so.
    const live = await ok(['snapshot', 'revert', 'si', 'd']);
    expect(live).toContain('the instance was restarted');
    await booted();
    expect(await sh(readSector('/dev/vda'))).toBe('STATE-B');
    await ok(['stop', '--force', 'si']);
    // A memory snapshot reverted while stopped: disks only, and it says so.
    expect(await ok(['snapshot', 'revert', 'si', 'c'])).toContain('the memory state is not loaded into a stopped instance');
    expectImageClean(disk);
    await ok(['snapshot', 'rm', 'si', 'd']);
    await ok(['snapshot', 'rm', 'si', 'b']);
    expect(internalTags(disk)).toEqual(['c']);
    expectImageClean(disk);
    await ok(['start', 'si']);
    await booted();
    expect(await sh(readSector('/dev/vda'))).toBe('STATE-A');
    await ok(['snapshot', 'rm', 'si', 'c']);
    expect(internalTags(disk)).toEqual([]);
    expect(await ok(['snapshot', 'ls', 'si'])).toBe('Instance si has no snapshots\n');
    await refused(['snapshot', 'revert', 'si', 'c'], 3, 'instance si has no snapshot c');
    await refused(['snapshot', 'create', 'si', 'Bad_Name'], 2, 'snapshot: "Bad_Name" is not a valid name');
    await refused(['snapshot', 'ls', 'nope'], 3, 'instance nope does not exist');
  });

  it('memory state saved with a hot-plugged disk is not loaded after a restart moved the disk; stopped, the disks revert', async () => {
    await ok(['volume', 'create', 'hot', '--size', '8M']);
    await ok(['disk', 'attach', 'si', 'hot']);
    await ok(['snapshot', 'create', 'si', 'h']);
    await ok(['restart', '--force', 'si']);
    await booted();
    await refused(['snapshot', 'revert', 'si', 'h'], 5, 'disk disk1 sat at PCI hotplug', 'stop si and revert then');
    expect(JSON.parse(await ok(['info', 'si', '--format', 'json'])).state).toBe('running');
    expect(await sh('echo alive')).toBe('alive');
    await ok(['stop', '--force', 'si']);
    expect(await ok(['snapshot', 'revert', 'si', 'h'])).toContain('the memory state is not loaded into a stopped instance');
    await ok(['snapshot', 'rm', 'si', 'h']);
    expectImageClean(disk);
    await ok(['disk', 'detach', 'si', 'hot']);
    await ok(['delete', 'si']);
    await ok(['volume', 'rm', 'hot']);
  });
});
