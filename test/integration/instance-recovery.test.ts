import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { qemuPidsUnder, tempHome, virtnode, waitForText } from '../helpers/cli.ts';
import { TEST_GUEST_READY_MARKER, testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '128M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

interface InstanceJson {
  name: string;
  state: string;
  reason?: string;
  pid?: number;
}

describe('crash safety and concurrency', () => {
  const { home, cleanup } = tempHome();
  afterAll(cleanup);
  const list = async (): Promise<InstanceJson[]> => {
    const r = await virtnode(home, ['list', '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as InstanceJson[];
  };
  const instanceDirs = () => readdirSync(join(home, 'instances')).sort();

  it.each(['create.after-mkdir', 'create.after-disk'])('kill -9 of virtnode at %s leaves no orphan after the next command', async (point) => {
    const crashed = await virtnode(home, ['create', 'half', '--disk-size', '1G'], { env: { VIRTNODE_FAILPOINT: point } });
    expect(crashed.signal).toBe('SIGKILL');
    expect(instanceDirs()).toContain('half'); // the crash really left something behind
    expect(await list()).toEqual([]); // the next command repairs it
    expect(instanceDirs()).toEqual([]);
    // and the name is free again
    expect((await virtnode(home, ['create', 'half', '--disk-size', '1G'])).code).toBe(0);
    expect((await virtnode(home, ['delete', 'half'])).code).toBe(0);
  });

  it('kill -9 of virtnode after QEMU was spawned but before it ran: the half-started QEMU is removed', async () => {
    expect((await virtnode(home, ['create', 'half-start', ...bootArgs])).code).toBe(0);
    const crashed = await virtnode(home, ['start', 'half-start'], { env: { VIRTNODE_FAILPOINT: 'start.after-spawn' } });
    expect(crashed.signal).toBe('SIGKILL');
    expect(qemuPidsUnder(home)).toHaveLength(1); // an orphan QEMU, paused in -S
    const [repaired] = await list();
    expect(repaired).toMatchObject({ name: 'half-start', state: 'stopped', reason: 'an interrupted start was rolled back' });
    expect(qemuPidsUnder(home)).toEqual([]);
    expect((await virtnode(home, ['delete', 'half-start'])).code).toBe(0);
  });

  it('kill -9 of virtnode after the guest was running: the VM is adopted, never killed', async () => {
    expect((await virtnode(home, ['create', 'adopt', ...bootArgs])).code).toBe(0);
    const crashed = await virtnode(home, ['start', 'adopt'], { env: { VIRTNODE_FAILPOINT: 'start.after-cont' } });
    expect(crashed.signal).toBe('SIGKILL');
    const [pid] = qemuPidsUnder(home);
    const [adopted] = await list();
    expect(adopted).toMatchObject({ name: 'adopt', state: 'running', pid });
    expect(qemuPidsUnder(home)).toEqual([pid]);
    expect((await virtnode(home, ['delete', '--force', 'adopt'])).code).toBe(0);
  });

  it('kill -9 of virtnode in the middle of delete: the next command finishes the delete', async () => {
    expect((await virtnode(home, ['create', 'half-delete', ...bootArgs, '--start'])).code).toBe(0);
    const crashed = await virtnode(home, ['delete', '--force', 'half-delete'], { env: { VIRTNODE_FAILPOINT: 'delete.after-mark' } });
    expect(crashed.signal).toBe('SIGKILL');
    expect(await list()).toEqual([]);
    expect(qemuPidsUnder(home)).toEqual([]);
    expect(instanceDirs()).toEqual([]);
  });

  it('ten parallel creates and starts of different instances all succeed', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `par${i}`);
    const created = await Promise.all(names.map((n) => virtnode(home, ['create', n, ...bootArgs, '--start'])));
    for (const r of created) expect(r.code, r.stderr).toBe(0);
    const all = await list();
    expect(all.map((i) => i.state)).toEqual(names.map(() => 'running'));
    expect(new Set(all.map((i) => i.pid)).size).toBe(10);
    expect(qemuPidsUnder(home)).toHaveLength(10);
    const deleted = await Promise.all(names.map((n) => virtnode(home, ['delete', '--force', n])));
    for (const r of deleted) expect(r.code, r.stderr).toBe(0);
    expect(qemuPidsUnder(home)).toEqual([]);
    expect(instanceDirs()).toEqual([]);
  }, 180_000);

  it('two concurrent stops of one instance: one stops it, the other says it is already stopped; state stays consistent', async () => {
    expect((await virtnode(home, ['create', 'twice', ...bootArgs, '--start'])).code).toBe(0);
    await waitForText(join(home, 'instances', 'twice', 'console.log'), TEST_GUEST_READY_MARKER, 60_000);
    const [a, b] = await Promise.all([virtnode(home, ['stop', 'twice']), virtnode(home, ['stop', 'twice'])]);
    const codes = [a.code, b.code].sort();
    expect(codes).toEqual([0, 5]);
    expect([a.stderr, b.stderr].join('')).toContain('it is stopped');
    const after = (await list()).find((i) => i.name === 'twice');
    expect(after).toMatchObject({ name: 'twice', state: 'stopped', reason: 'guest powered off (ACPI shutdown)' });
    expect(after!.pid).toBeUndefined();
    expect(qemuPidsUnder(home)).toEqual([]);
    expect((await virtnode(home, ['delete', 'twice'])).code).toBe(0);
  });
});
