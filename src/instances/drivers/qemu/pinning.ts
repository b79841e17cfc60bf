import { run } from '../../../exec/run.ts';
import { queryCpusFast } from '../../../qmp/commands.ts';
import type { QmpConnection } from '../../../qmp/connection.ts';
import { formatCpuList } from '../../../lib/cpu-list.ts';
import type { Tuning } from '../../model.ts';

const TASKSET_TIMEOUT_MS = 5_000;

function taskset(cpus: readonly number[], pid: number, options: { allThreads?: boolean } = {}): Promise<unknown> {
  return run(['taskset', ...(options.allThreads === true ? ['--all-tasks'] : []), '--pid', '--cpu-list', formatCpuList(cpus), String(pid)], { timeoutMs: TASKSET_TIMEOUT_MS });
}

/**
 * Pins a new QEMU before its guest runs: every thread to the emulator CPUs first, then each vCPU thread (from
 * query-cpus-fast) to its own CPU. Threads QEMU makes later inherit the main thread's set.
 */
export async function applyPinning(qmp: QmpConnection, pid: number, tuning: Tuning | undefined): Promise<void> {
  if (tuning?.emulatorPins !== undefined) await taskset(tuning.emulatorPins, pid, { allThreads: true });
  const pins = tuning?.vcpuPins;
  if (pins === undefined) return;
  for (const cpu of await queryCpusFast(qmp)) {
    const hostCpu = pins[cpu['cpu-index']];
    if (hostCpu !== undefined) await taskset([hostCpu], cpu['thread-id']);
  }
}
