import type { CoreContext } from '../core/context.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { isOurQemu, lastLogLine, killQemu } from '../qemu/process.ts';
import { queryStatus as queryRunState } from '../qmp/commands.ts';
import { QmpConnection } from '../qmp/connection.ts';
import { acquireLock } from '../store/locks.ts';
import type { Instance } from './model.ts';
import { removeRuntimeFiles, runtimePaths } from './runtime.ts';

const QUERY_TIMEOUT_MS = 1_000;

/**
 * Brings a recorded state in line with reality: a running/paused instance whose QEMU is gone has crashed; one
 * whose guest powered itself off (QEMU kept alive by -no-shutdown) is stopped and its QEMU told to quit.
 * Uses the query monitor, so a long operation holding the main monitor never blocks it.
 */
export async function observeInstance(core: CoreContext, instance: Instance): Promise<Instance> {
  if (instance.state !== 'running' && instance.state !== 'paused') return instance;
  const identity = { pid: instance.pid ?? -1, start: instance.pidStart ?? '' };
  const dir = core.paths.instanceDir(instance.name);
  if (!isOurQemu(identity, instance.uuid)) {
    const log = lastLogLine(runtimePaths(dir).qemuLog);
    const reason = `QEMU (pid ${identity.pid}) exited without a guest shutdown: it was killed or crashed${log === 'no message' ? '' : ` (last QEMU message: ${log})`}`;
    if (core.repos.instances.compareAndSetState(instance.name, instance.state, instance.pid, 'crashed', reason)) {
      core.repos.instances.setProcess(instance.name, undefined, undefined);
      removeRuntimeFiles(dir);
      await core.networks.releaseInstance(instance).catch(() => {}); // reconcile retries stale taps
    }
    return core.repos.instances.get(instance.name) ?? instance;
  }
  const status = await queryStatus(runtimePaths(dir).qmpQuery);
  if (status === undefined) return instance;
  if (status === 'shutdown' || status === 'guest-panicked') {
    const reason = status === 'shutdown' ? 'the guest powered itself off' : 'the guest kernel panicked';
    await settleEndedGuest(core, instance, status === 'shutdown' ? 'stopped' : 'crashed', reason);
    return core.repos.instances.get(instance.name) ?? instance;
  }
  const observed = status === 'running' ? 'running' : 'paused';
  if (observed !== instance.state) {
    core.repos.instances.compareAndSetState(instance.name, instance.state, instance.pid, observed, status === 'running' ? undefined : `QEMU reports ${status}`);
    return core.repos.instances.get(instance.name) ?? instance;
  }
  return instance;
}

async function queryStatus(socket: string): Promise<string | undefined> {
  let qmp: QmpConnection | undefined;
  try {
    qmp = await QmpConnection.connect(socket, { timeoutMs: QUERY_TIMEOUT_MS });
    const reply = await queryRunState(qmp, { timeoutMs: QUERY_TIMEOUT_MS });
    return reply.status;
  } catch (e) {
    if (e instanceof VirtnodeError) return undefined; // busy or going away: keep the recorded state
    throw e;
  } finally {
    qmp?.close();
  }
}

/** The guest ended on its own: end its QEMU and record why, if no operation is under way on it. */
async function settleEndedGuest(core: CoreContext, instance: Instance, state: 'stopped' | 'crashed', reason: string): Promise<void> {
  let release: (() => void) | undefined;
  try {
    release = await acquireLock(core.db, instance.name, 'settle', { waitMs: 0 });
  } catch {
    return; // the lock holder is this process or another operation: it will see the same thing
  }
  try {
    const current = core.repos.instances.get(instance.name);
    if (current?.state !== instance.state || current.pid !== instance.pid) return;
    await killQemu({ pid: instance.pid!, start: instance.pidStart! });
    removeRuntimeFiles(core.paths.instanceDir(instance.name));
    await core.networks.releaseInstance(instance).catch(() => {});
    core.repos.instances.setProcess(instance.name, undefined, undefined);
    core.repos.instances.setState(instance.name, state, reason);
  } finally {
    release();
  }
}
