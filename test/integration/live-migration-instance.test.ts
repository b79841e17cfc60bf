import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppCore } from '../../src/app/context.ts';
import { createAppCore } from '../../src/app/create-app-core.ts';
import { copyingBaseFetcher } from '../../src/instances/migrate/base-fetch.ts';
import { adoptMovedInstance, type InstanceMoveTarget, moveInstanceOut } from '../../src/instances/migrate/move-instance.ts';
import { MigrationTarget } from '../../src/instances/migrate/target.ts';
import { isVirtnodeError } from '../../src/lib/errors.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { killQemu } from '../../src/qemu/process.ts';
import { SerialShell } from '../helpers/serial-shell.ts';
import { testGuest } from '../helpers/test-guest.ts';
import { qemuPidsFor } from '../helpers/two-hosts.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function host(prefix: string): { app: AppCore; home: string } {
  const home = mkdtempSync(join(tmpdir(), prefix));
  const app = createAppCore(statePaths(home));
  cleanups.push(async () => {
    for (const instance of app.core.repos.instances.list()) await app.instances.delete(instance.name, { force: true }).catch(() => {});
    app.db.close();
    rmSync(home, { recursive: true, force: true });
  });
  return { app, home };
}

function targetOn(app: AppCore, name: string): { target: MigrationTarget; moveTarget: InstanceMoveTarget } {
  const target = new MigrationTarget({ dir: app.paths.instanceDir(name), listenHost: '127.0.0.1', fetchBase: copyingBaseFetcher(join(app.paths.root, 'moved-bases')) });
  cleanups.push(async () => {
    target.connection?.close();
    if (target.process !== undefined && app.core.repos.instances.get(name) === undefined) await killQemu(target.process).catch(() => {});
  });
  const moveTarget: InstanceMoveTarget = {
    prepare: (offer, options) => target.prepare(offer, options),
    resume: (options) => target.resume(options),
    abort: (reason) => target.abort(reason),
    adopt: (instance) => Promise.resolve(adoptMovedInstance(app.core, instance, target)),
  };
  return { target, moveTarget };
}

describe('moving an instance record with its guest (two state directories)', () => {
  it('the source forgets the instance, the target records it with its own disk path and manages it', async () => {
    const a = host('virtnode-move-a-');
    const b = host('virtnode-move-b-');
    const guest = testGuest();
    await a.app.instances.create({ name: 'wanderer', memory: '256M', diskSize: '64M', kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline, accel: 'tcg', tuning: { cpuModel: 'qemu64' } });
    const started = await a.app.instances.start('wanderer');
    const shell = await SerialShell.whenReady(a.app.paths.instanceDir('wanderer'), 90_000);
    cleanups.push(() => shell.close());
    const written = await shell.run('dd if=/dev/urandom of=/dev/vda bs=1M count=4 conv=fsync 2>/dev/null; dd if=/dev/vda bs=1M count=4 2>/dev/null | md5sum');
    const checksum = /([0-9a-f]{32})/.exec(written.output)![1]!;

    const { target, moveTarget } = targetOn(b.app, 'wanderer');
    const result = await moveInstanceOut(a.app.core, 'wanderer', moveTarget);
    expect(result.diskBytes).toBe(64 * 1024 * 1024);

    expect(a.app.core.repos.instances.get('wanderer')).toBeUndefined();
    expect(existsSync(a.app.paths.instanceDir('wanderer'))).toBe(false);
    expect(qemuPidsFor(started.uuid)).toEqual([target.process!.pid]);
    const moved = await b.app.instances.get('wanderer');
    expect(moved.state).toBe('running');
    expect(moved.uuid).toBe(started.uuid);
    expect(moved.nics.map((n) => n.mac)).toEqual(started.nics.map((n) => n.mac));
    expect(moved.pid).toBe(target.process!.pid);
    expect(moved.spec.disks[0]!.path).toBe(join(b.app.paths.instanceDir('wanderer'), 'disk0.qcow2'));

    const there = await SerialShell.open(b.app.paths.instanceDir('wanderer'));
    cleanups.push(() => there.close());
    const read = await there.run('echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=1M count=4 2>/dev/null | md5sum');
    expect(read.output).toContain(checksum);
    // The target's virtnode manages it like any of its instances.
    const stopped = await b.app.instances.stop('wanderer', { force: true });
    expect(stopped.instance.state).toBe('stopped');
    expect(qemuPidsFor(started.uuid)).toEqual([]);
  }, 240_000);

  it('refuses a stopped instance and one without a named CPU model, changing nothing', async () => {
    const a = host('virtnode-move-a-');
    const b = host('virtnode-move-b-');
    const guest = testGuest();
    await a.app.instances.create({ name: 'default-cpu', memory: '128M', kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline, accel: 'tcg' });
    const { moveTarget } = targetOn(b.app, 'default-cpu');
    const stopped = await moveInstanceOut(a.app.core, 'default-cpu', moveTarget).catch((e: unknown) => e);
    expect(isVirtnodeError(stopped, 'INVALID_STATE')).toBe(true);
    await a.app.instances.start('default-cpu');
    const noModel = await moveInstanceOut(a.app.core, 'default-cpu', moveTarget).catch((e: unknown) => e);
    expect(isVirtnodeError(noModel, 'INVALID')).toBe(true);
    expect((noModel as Error).message).toMatch(/cpuModel/);
    expect((await a.app.instances.get('default-cpu')).state).toBe('running');
    expect(existsSync(join(a.app.paths.instanceDir('default-cpu'), 'outgoing.json'))).toBe(false);
    expect(existsSync(b.app.paths.instanceDir('default-cpu'))).toBe(false);
  }, 120_000);
});
