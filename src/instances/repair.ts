import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreContext } from '../core/context.ts';
import { processCmdline, processStartTime } from '../lib/proc.ts';
import { isOurQemu, killQemu, readPidfile } from '../qemu/process.ts';
import { queryStatus } from '../qmp/commands.ts';
import { QmpConnection } from '../qmp/connection.ts';
import { acquireLock, lockOwner } from '../store/locks.ts';
import { ACTIVE_STATES, type Instance, TRANSITIONAL_STATES } from './model.ts';
import { removeRuntimeFiles, runtimePaths } from './runtime.ts';
import { InstanceService } from './service.ts';

/**
 * The instances' part of reconciliation (src/app/reconcile.ts runs all of it): an operation left half done
 * (state creating/starting/stopping/deleting, owner gone) is finished or undone, and an instance directory with
 * no record is removed. A QEMU that is running a guest is adopted, never killed because a state write was lost.
 * `strays` tells whether a directory with no record was found (its QEMU may still run somewhere).
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
    // Decide again under the instance's lock: a concurrent create may have made its record and directory
    // between the two reads above, and released its lock between create and start.
    let release: () => void;
    try {
      release = await acquireLock(core.db, entry, 'repair', { waitMs: 0 });
    } catch {
      continue;
    }
    try {
      if (core.repos.instances.get(entry) !== undefined) continue;
      strays = true;
      const dir = join(core.paths.instances, entry);
      const pid = readPidfile(runtimePaths(dir).pidfile);
      if (pid !== undefined) await killIfQemuOf(pid, dir);
      rmSync(dir, { recursive: true, force: true });
      repaired.push(`${entry}: removed a directory with no instance record`);
    } finally {
      release();
    }
  }
  return { repaired, strays };
}

/** Kills QEMU processes whose pidfile lies in our instances directory but whose instance has no record. */
export async function killUnrecordedQemus(core: CoreContext): Promise<string[]> {
  const repaired: string[] = [];
  const known = new Set(core.repos.instances.list().map((i) => i.name));
  for (const orphan of findUnrecordedQemus(core.paths.instances, known)) {
    await killIfQemuOf(orphan.pid, orphan.dir);
    repaired.push(`killed QEMU ${orphan.pid} of ${orphan.dir}, which had no instance record`);
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
  for (const tap of await core.networks.removeStaleTaps((name) => active.has(name))) repaired.push(`removed stale tap ${tap}`);
  return repaired;
}

async function repairInterrupted(service: InstanceService, instance: Instance): Promise<string | undefined> {
  let release: () => void;
  try {
    release = await acquireLock(service.db, instance.name, 'repair', { waitMs: 0 });
  } catch {
    return undefined; // someone else is repairing it right now
  }
  try {
    const current = service.repo.get(instance.name);
    if (current === undefined || current.state !== instance.state) return undefined;
    const dir = service.paths.instanceDir(current.name);
    const qemu = liveQemu(current, dir);
    switch (current.state) {
      case 'creating':
      case 'deleting':
        await service.destroyLocked({ ...current, ...(qemu ?? {}) });
        return `finished an interrupted ${current.state === 'creating' ? 'create (undone)' : 'delete'}`;
      case 'starting':
      case 'stopping': {
        if (qemu !== undefined && (await guestRunning(dir))) {
          service.repo.setProcess(current.name, qemu.pid, qemu.pidStart);
          service.repo.setState(current.name, 'running', `adopted after an interrupted ${current.state === 'starting' ? 'start' : 'stop'}`);
          return 'adopted its running QEMU';
        }
        if (qemu !== undefined) await killQemu({ pid: qemu.pid, start: qemu.pidStart });
        removeRuntimeFiles(dir);
        await service.networks.releaseInstance(current);
        service.repo.setProcess(current.name, undefined, undefined);
        service.repo.setState(current.name, 'stopped', `an interrupted ${current.state === 'starting' ? 'start' : 'stop'} was rolled back`);
        return `rolled back an interrupted ${current.state}`;
      }
      default:
        return undefined;
    }
  } finally {
    release();
  }
}

/** The instance's QEMU, from the record or (if the crash came before the record) from its pidfile. */
function liveQemu(instance: Instance, dir: string): { pid: number; pidStart: string } | undefined {
  const candidates = [instance.pid, readPidfile(runtimePaths(dir).pidfile)].filter((p): p is number => p !== undefined);
  for (const pid of candidates) {
    const start = processStartTime(pid);
    if (start !== undefined && isOurQemu({ pid, start }, instance.uuid)) return { pid, pidStart: start };
  }
  return undefined;
}

async function guestRunning(dir: string): Promise<boolean> {
  try {
    const qmp = await QmpConnection.connect(runtimePaths(dir).qmpQuery, { timeoutMs: 2_000 });
    try {
      const status = await queryStatus(qmp);
      return status.running;
    } finally {
      qmp.close();
    }
  } catch {
    return false;
  }
}

async function killIfQemuOf(pid: number, dir: string): Promise<void> {
  const start = processStartTime(pid);
  if (start === undefined) return;
  const cmdline = processCmdline(pid);
  const pidfileAt = cmdline.indexOf('-pidfile');
  if (pidfileAt >= 0 && cmdline[pidfileAt + 1] === runtimePaths(dir).pidfile) await killQemu({ pid, start });
}

/** QEMU processes whose pidfile lies in our instances directory but whose instance has no record. */
function findUnrecordedQemus(instancesDir: string, known: Set<string>): Array<{ pid: number; dir: string }> {
  const found: Array<{ pid: number; dir: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let comm: string;
    try {
      comm = readFileSync(`/proc/${entry}/comm`, 'utf8');
    } catch {
      continue;
    }
    if (!comm.startsWith('qemu-system')) continue;
    const cmdline = processCmdline(Number(entry));
    const pidfile = cmdline[cmdline.indexOf('-pidfile') + 1];
    if (pidfile === undefined || !pidfile.startsWith(`${instancesDir}/`)) continue;
    const name = pidfile.slice(instancesDir.length + 1).split('/')[0]!;
    if (!known.has(name)) found.push({ pid: Number(entry), dir: join(instancesDir, name) });
  }
  return found;
}
