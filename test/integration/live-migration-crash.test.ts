import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { buildOffer } from '../../src/instances/migrate/offer.ts';
import { recoverSource } from '../../src/instances/migrate/source.ts';
import { runtimePaths } from '../../src/instances/runtime.ts';
import { queryStatus, queryVersion } from '../../src/qmp/commands.ts';
import { queryMigrate } from '../../src/qmp/migration.ts';
import { DIRTY_LOOP, MigrationFixture, waitForTicks } from '../helpers/migration-fixture.ts';
import { qemuPidsFor, ticks } from '../helpers/two-hosts.ts';

const CHILD = join(import.meta.dirname, '../helpers/migrate-source-child.ts');

const fx = new MigrationFixture();
afterEach(() => fx.cleanUp());

/**
 * The source's driver process dies mid-move (SIGKILL); the target, having lost its source, aborts; the source
 * host's repair (recoverSource) puts the guest back. `killWhen` picks the moment from the child's reports.
 */
async function killDriverWhen(name: string, maxBandwidth: number, killWhen: (event: { event: string; phase?: string; bytesSent?: number }) => boolean) {
  const hosts = fx.twoHosts;
  const { vm, shell } = await fx.bootSource(name);
  await shell.run(DIRTY_LOOP);
  const sourceLog = runtimePaths(vm.dir).serialLog;
  await waitForTicks([sourceLog], 2, 60_000);

  const target = fx.targetFor(name);
  const offer = await buildOffer(vm.spec, { qemuVersion: (await queryVersion(vm.qmp)).qemu, transfers: {}, postcopy: false });
  const ready = await target.prepare(offer);
  const child: ChildProcess = spawn(process.execPath, [CHILD, JSON.stringify({ qmpPath: vm.spec.paths.qmpQuery, offer, ready, maxBandwidth })], { stdio: ['ignore', 'pipe', 'inherit'] });
  fx.onCleanUp(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const events: string[] = [];
  const killed = await new Promise<boolean>((resolve) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const event = JSON.parse(line) as { event: string; phase?: string; bytesSent?: number };
      events.push(event.phase ?? event.event);
      if (killWhen(event) && child.exitCode === null) {
        child.kill('SIGKILL');
        resolve(true);
      }
    });
    child.once('exit', () => resolve(false));
  });
  expect(killed, `the driver ended before the kill; it reported ${events.join(', ')}`).toBe(true);
  const statusAtKill = (await queryMigrate(vm.qmp)).status;

  // The target lost its source before being told to resume: it aborts.
  await target.abort('the source went away');
  const recovered = await recoverSource(vm.qmp);
  expect((await queryStatus(vm.qmp)).status).toBe('running');
  expect(qemuPidsFor(vm.spec.uuid)).toEqual([vm.identity.pid]);
  expect(existsSync(join(hosts.b.stateDir, 'instances', name))).toBe(false);
  const seen = ticks(sourceLog).length;
  const after = await waitForTicks([sourceLog], seen + 3, 60_000);
  expect(after).toEqual(after.map((_, i) => i + 1));
  return { recovered, statusAtKill };
}

describe('the source driver killed mid-move', () => {
  it('during the memory copy: the guest runs on at the source, nothing remains on the target', async () => {
    const { statusAtKill } = await killDriverWhen('crash-copy', 4 * 1024 * 1024, (e) => e.phase === 'migrating' && (e.bytesSent ?? 0) > 4 * 1024 * 1024);
    expect(statusAtKill).toBe('active');
  }, 180_000);

  it('after the memory arrived, before the target resumed: the source is resumed by its repair', async () => {
    const { recovered, statusAtKill } = await killDriverWhen('crash-switch', 1024 * 1024 * 1024, (e) => e.event === 'resume');
    expect(statusAtKill).toBe('completed');
    expect(recovered.resumed).toBe(true);
  }, 180_000);
});
