import { openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { guestRun, readSector, waitForBoot, writeSector } from '../helpers/guest-shell.ts';
import { testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '256M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

function firstBytes(path: string, n: number): string {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(n);
    readSync(fd, buffer, 0, n, 0);
    return buffer.toString('latin1');
  } finally {
    closeSync(fd);
  }
}

describe('disk attach/detach of volumes, live and stopped (tiny guest, TCG)', { timeout: 300_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-hotplug-');
  afterAll(cleanup);
  const ok = async (args: string[]) => {
    const r = await virtnode(home, args);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const blockDevices = async () => (await guestRun(home, 'hp', 'ls /sys/block | tr "\\n" " "')).trim().split(/\s+/);
  const waitForBlockDevices = async (wanted: (devices: string[]) => boolean) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const devices = await blockDevices();
      if (wanted(devices)) return devices;
      if (Date.now() > deadline) throw new Error(`guest block devices stayed ${devices.join(' ')}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  it('hot-plugs a volume the guest sees, writes it, grows it live, hot-unplugs it after the guest let go', async () => {
    await ok(['create', 'hp', ...bootArgs, '--disk-size', '64M', '--start']);
    await ok(['create', 'other', ...bootArgs]);
    await ok(['volume', 'create', 'data', '--size', '32M', '--format', 'raw']);
    await waitForBoot(home, 'hp');
    expect(await blockDevices()).toEqual(['vda']);

    expect(await ok(['disk', 'attach', 'hp', 'data'])).toContain('Attached volume data to hp as disk1 (hot-plugged)');
    expect(await waitForBlockDevices((d) => d.includes('vdb'))).toEqual(['vda', 'vdb']);
    expect(await guestRun(home, 'hp', writeSector('/dev/vdb', 'HOTPLUGGED-DATA'))).toBe('written');
    expect(await guestRun(home, 'hp', readSector('/dev/vdb'))).toBe('HOTPLUGGED-DATA');
    expect(firstBytes(join(home, 'pools', 'default', 'data.raw'), 15)).toBe('HOTPLUGGED-DATA');

    const rm = await virtnode(home, ['volume', 'rm', 'data']);
    expect(rm.code).toBe(4);
    expect(rm.stderr).toContain('cannot remove volume data: it is attached to instance hp');
    expect(rm.stderr).toContain('virtnode disk detach hp data');
    const twice = await virtnode(home, ['disk', 'attach', 'other', 'data']);
    expect(twice.code).toBe(4);
    expect(twice.stderr).toContain('volume data is already attached to instance hp');
    const ls = JSON.parse(await ok(['volume', 'ls', '--format', 'json'])) as Array<{ name: string; attachedTo: string }>;
    expect(ls).toMatchObject([{ name: 'data', attachedTo: 'hp' }]);

    expect(await ok(['volume', 'resize', 'data', '--size', '48M'])).toContain('from 32 MiB to 48 MiB (live)');
    expect(await guestRun(home, 'hp', 'cat /sys/block/vdb/size')).toBe(String((48 * 2 ** 20) / 512));

    expect(await ok(['disk', 'detach', 'hp', 'data'])).toContain('Detached volume data from hp (the guest released it)');
    expect(await waitForBlockDevices((d) => !d.includes('vdb'))).toEqual(['vda']);
    const info = JSON.parse(await ok(['info', 'hp', '--format', 'json'])) as { disks: Array<{ id: string }> };
    expect(info.disks.map((d) => d.id)).toEqual(['disk0']);
  });

  it('attaches to a stopped instance for its next start, and live-attached disks persist across a restart', async () => {
    await ok(['disk', 'attach', 'hp', 'data']); // live again
    await waitForBlockDevices((d) => d.includes('vdb'));
    await ok(['stop', '--force', 'hp']);
    await ok(['start', 'hp']);
    await waitForBoot(home, 'hp', 2);
    expect(await blockDevices()).toEqual(['vda', 'vdb']);
    expect(await guestRun(home, 'hp', readSector('/dev/vdb'))).toBe('HOTPLUGGED-DATA');
    await ok(['stop', '--force', 'hp']);
    expect(await ok(['disk', 'detach', 'hp', 'data'])).toBe('Detached volume data from hp\n');

    expect(await ok(['disk', 'attach', 'other', 'data'])).toContain('(from next start)');
    await ok(['start', 'other']);
    await waitForBoot(home, 'other');
    expect(await guestRun(home, 'other', readSector('/dev/vda'))).toBe('HOTPLUGGED-DATA');
    const unknown = await virtnode(home, ['disk', 'detach', 'other', 'nope']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('volume nope is not attached to instance other');
    await ok(['delete', '--force', 'other']);
    await ok(['delete', 'hp']);
    // Deleting an instance never deletes a volume it used.
    await ok(['volume', 'rm', 'data']);
  });

  it('two attaches of one volume to two instances, from two processes at once: one wins, the other is refused', async () => {
    await ok(['create', 'race1', ...bootArgs]);
    await ok(['create', 'race2', ...bootArgs]);
    await ok(['volume', 'create', 'shared', '--size', '16M']);
    // The first attach waits 2 s between its check and its record; the second one runs into that window.
    const first = virtnode(home, ['disk', 'attach', 'race1', 'shared'], { env: { VIRTNODE_DELAYPOINT: 'attach.after-check:2000' } });
    await new Promise((resolve) => setTimeout(resolve, 700));
    const second = await virtnode(home, ['disk', 'attach', 'race2', 'shared']);
    const won = await first;
    expect(won.code, won.stderr).toBe(0);
    expect(second.code, second.stdout).toBe(4);
    expect(second.stderr).toContain('volume shared is already attached to instance race1');
    const holds = async (name: string) => (JSON.parse(await ok(['info', name, '--format', 'json'])) as { disks: Array<{ path: string }> }).disks.some((d) => d.path.includes('/shared.'));
    expect(await holds('race1')).toBe(true);
    expect(await holds('race2')).toBe(false);
    // A remove against an attach in its window waits too, and then refuses.
    await ok(['disk', 'detach', 'race1', 'shared']);
    const attaching = virtnode(home, ['disk', 'attach', 'race2', 'shared'], { env: { VIRTNODE_DELAYPOINT: 'attach.after-check:2000' } });
    await new Promise((resolve) => setTimeout(resolve, 700));
    const rm = await virtnode(home, ['volume', 'rm', 'shared']);
    expect((await attaching).code).toBe(0);
    expect(rm.code).toBe(4);
    expect(rm.stderr).toContain('cannot remove volume shared: it is attached to instance race2');
    await ok(['delete', 'race1']);
    await ok(['delete', 'race2']);
    await ok(['volume', 'rm', 'shared']);
  });
});
