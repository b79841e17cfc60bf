import type { CoreContext } from '../core/context.ts';
import { releaseDisks } from './disk-claims.ts';
import { withLockIfFree } from '../store/locks.ts';
import type { InstanceDriver } from './driver.ts';
import { driverFor } from './drivers/index.ts';
import type { Instance } from './model.ts';

/**
 * Brings a recorded state in line with reality: a running/paused instance whose process is gone has crashed; one
 * whose guest powered itself off (QEMU kept alive by -no-shutdown) is stopped and its process ended. The driver
 * asks without waiting on a busy monitor, so a long operation on the instance never blocks this.
 */
export async function observeInstance(core: CoreContext, instance: Instance): Promise<Instance> {
  if (instance.state !== 'running' && instance.state !== 'paused') return instance;
  const driver = driverFor(core.paths, instance);
  const seen = await driver.observe(instance);
  switch (seen.state) {
    case 'unknown':
      return instance;
    case 'gone':
      if (core.repos.instances.compareAndSetState(instance.name, instance.state, instance.pid, 'crashed', seen.reason)) {
        core.repos.instances.setProcess(instance.name, undefined, undefined);
        driver.clearRuntime(instance);
        await core.networks.releaseInstance(instance).catch(() => {}); // reconcile retries stale taps
      }
      return core.repos.instances.get(instance.name) ?? instance;
    case 'stopped':
    case 'crashed':
      await settleEndedGuest(core, driver, instance, seen.state, seen.reason);
      return core.repos.instances.get(instance.name) ?? instance;
    case 'running':
    case 'paused':
      if (seen.state === instance.state) return instance;
      core.repos.instances.compareAndSetState(instance.name, instance.state, instance.pid, seen.state, seen.state === 'running' ? undefined : seen.reason);
      return core.repos.instances.get(instance.name) ?? instance;
  }
}

/** The guest ended on its own: end its process and record why, if no operation is under way on it. */
async function settleEndedGuest(core: CoreContext, driver: InstanceDriver, instance: Instance, state: 'stopped' | 'crashed', reason: string): Promise<void> {
  // Skipped if the lock is held: its holder (this process or another operation) will see the same thing.
  await withLockIfFree(core.db, instance.name, 'settle', async () => {
    const current = core.repos.instances.get(instance.name);
    if (current?.state !== instance.state || current.pid !== instance.pid) return;
    await driver.kill(instance);
    driver.clearRuntime(instance);
    await core.networks.releaseInstance(instance).catch(() => {});
    await releaseDisks(core, instance).catch(() => {});
    core.repos.instances.setProcess(instance.name, undefined, undefined);
    core.repos.instances.setState(instance.name, state, reason);
  });
}
