import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreContext } from '../core/context.ts';
import { lockOwner, withLockIfFree } from '../store/locks.ts';
import { allDrivers } from './drivers/index.ts';
import { ARRIVAL_FILE, INCOMING_MARKER, incomingMoves, pendingArrivals } from './migrate/stale-incoming.ts';
import { ACTIVE_STATES, type Instance, TRANSITIONAL_STATES } from './model.ts';
import { InstanceService } from './service.ts';

/**
 * The instances' part of reconciliation (src/app/reconcile.ts runs all of it): an operation left half done
 * (state creating/starting/stopping/deleting, owner gone) is finished or undone, and an instance directory with
 * no record is removed. A process that is running a guest is adopted, never killed because a state write was lost.
 * `strays` tells whether a directory with no record was found (its process may still run somewhere).
 */
export async function repairInstances(core: CoreContext): Promise<{ repaired: string[]; strays: boolean }> {
  const repaired: string[] = [];
  const service = new InstanceService(core);
  for (const instance of core.repos.instances.list()) {
    if (!TRANSITIONAL_STATES.has(instance.state) || lockOwner(core.db, instance.name) !== undefined) continue;
    const action = await repairInterrupted(service, instance);
    if (action !== undefined) repaired.push(`${instance.name}: ${action}`);
  }
  let strays = false;
  for (const entry of readdirSync(core.paths.instances)) {
    if (core.repos.instances.get(entry) !== undefined || lockOwner(core.db, entry) !== undefined) continue;
    // An incoming live move has no record until the guest runs here: removeStaleIncoming decides by its owner.
    if (existsSync(join(core.paths.instances, entry, INCOMING_MARKER))) continue;
    // A moved guest that runs here before its record is written: the cluster adopts it (never a stray to kill).
    if (existsSync(join(core.paths.instances, entry, ARRIVAL_FILE))) continue;
    // Decide again under the instance's lock: a concurrent create may have made its record and directory
    // between the two reads above, and released its lock between create and start.
    await withLockIfFree(core.db, entry, 'repair', async () => {
      if (core.repos.instances.get(entry) !== undefined) return;
      strays = true;
      const dir = join(core.paths.instances, entry);
      for (const driver of allDrivers(core.paths)) {
        await driver.killOrphan(dir);
        await driver.releaseStorage(dir);
      }
      rmSync(dir, { recursive: true, force: true });
      repaired.push(`${entry}: removed a directory with no instance record`);
    });
  }
  return { repaired, strays };
}

/** Kills the processes (QEMU) whose runtime files lie in our instances directory but whose instance has no record. */
export async function killUnrecordedQemus(core: CoreContext): Promise<string[]> {
  const repaired: string[] = [];
  const known = new Set(core.repos.instances.list().map((i) => i.name));
  // A moved guest still to adopt (it runs here, its record comes with the adoption).
  for (const name of pendingArrivals(core.paths.instances)) known.add(name);
  for (const driver of allDrivers(core.paths)) {
    for (const orphan of driver.findOrphans(core.paths.instances, known)) {
      await driver.killOrphan(orphan.dir, orphan.pid);
      repaired.push(`killed QEMU ${orphan.pid} of ${orphan.dir}, which had no instance record`);
    }
  }
  return repaired;
}

/** Managed networks up again (after a host reboot nothing of them exists), and no tap of a stopped instance left. */
export async function repairNetworks(core: CoreContext): Promise<string[]> {
  const repaired: string[] = [];
  const networks = core.networks.list();
  if (networks.length === 0) return repaired;
  for (const network of networks) {
    if (await core.networks.isUp(network)) continue;
    try {
      await core.networks.ensureUp(network);
      repaired.push(`network ${network.name}: brought up again`);
    } catch (e) {
      repaired.push(`network ${network.name}: could not be brought up (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  const active = new Set(core.repos.instances.list().filter((i) => ACTIVE_STATES.has(i.state)).map((i) => i.name));
  // An incoming live move still under way (its marker outlived removeStaleIncoming) has taps and no record yet.
  for (const name of incomingMoves(core.paths.instances)) active.add(name);
  for (const name of pendingArrivals(core.paths.instances)) active.add(name);
  for (const tap of await core.networks.removeStaleTaps((name) => active.has(name))) repaired.push(`removed stale tap ${tap}`);
  return repaired;
}

/** What was done, if anything (nothing when someone else is repairing it right now). */
async function repairInterrupted(service: InstanceService, instance: Instance): Promise<string | undefined> {
  return withLockIfFree(service.db, instance.name, 'repair', async () => {
    const current = service.repo.get(instance.name);
    if (current === undefined || current.state !== instance.state) return undefined;
    const driver = service.driver(current);
    const found = driver.find(current);
    // The record with the process found (a crash may have come before the process was recorded).
    const live = found === undefined ? current : { ...current, pid: found.pid, pidStart: found.start };
    switch (current.state) {
      case 'creating':
      case 'deleting':
        await service.destroyLocked(live);
        return `finished an interrupted ${current.state === 'creating' ? 'create (undone)' : 'delete'}`;
      case 'starting':
      case 'stopping': {
        if (found !== undefined && (await driver.guestRunning(live))) {
          service.repo.setProcess(current.name, found.pid, found.start);
          service.repo.setState(current.name, 'running', `adopted after an interrupted ${current.state === 'starting' ? 'start' : 'stop'}`);
          return 'adopted its running QEMU';
        }
        if (found !== undefined) await driver.kill(live);
        driver.clearRuntime(current);
        await service.networks.releaseInstance(current);
        service.repo.setProcess(current.name, undefined, undefined);
        service.repo.setState(current.name, 'stopped', `an interrupted ${current.state === 'starting' ? 'start' : 'stop'} was rolled back`);
        return `rolled back an interrupted ${current.state}`;
      }
      default:
        return undefined;
    }
  });
}

