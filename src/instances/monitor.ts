import { VirtnodeError } from '../lib/errors.ts';
import { processStopped } from '../lib/proc.ts';
import { QmpConnection } from '../qmp/connection.ts';
import type { Instance } from './model.ts';

/**
 * Connects to one of an instance's QMP monitors. When QEMU does not answer in time, the error names the instance
 * and the time waited, and says why when its process is stopped (SIGSTOP): it then answers nothing at all.
 */
export async function connectMonitor(socket: string, instance: Instance, timeoutMs: number): Promise<QmpConnection> {
  try {
    return await QmpConnection.connect(socket, { timeoutMs });
  } catch (e) {
    throw explainSilence(e, instance, timeoutMs);
  }
}

/**
 * A QMP timeout (or a monitor that never greeted) of this instance, told in its terms; other errors unchanged.
 * `waitedMs`: how long the connection waited (a command's timeout is in its own message).
 */
export function explainSilence(e: unknown, instance: Instance, waitedMs?: number): unknown {
  if (!(e instanceof VirtnodeError) || (e.code !== 'BUSY' && e.code !== 'QMP_TIMEOUT')) return e;
  const pid = instance.pid;
  if (pid !== undefined && processStopped(pid)) {
    return new VirtnodeError('QMP_TIMEOUT', `instance ${instance.name}: QEMU (pid ${pid}) ${waitedMs === undefined ? `did not answer (${e.message})` : `did not answer QMP within ${waitedMs / 1000} s`}: its process is stopped (SIGSTOP or a debugger)`, {
      cause: e,
      hint: `let it continue (kill -CONT ${pid}), or end it: virtnode stop --force ${instance.name}`,
    });
  }
  return new VirtnodeError(e.code, `instance ${instance.name}: ${e.message}`, { cause: e, ...(e.hint === undefined ? {} : { hint: e.hint }) });
}
