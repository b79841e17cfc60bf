import { queryChardev } from '../qmp/commands.ts';
import { QmpConnection } from '../qmp/connection.ts';
import { GUEST_AGENT_CHARDEV } from '../qemu/spec.ts';

/**
 * Whether a program in the guest holds the guest agent's port open, as QEMU sees it (the virtio-serial port's
 * chardev is `frontend-open` while the guest has it open). Asking an agent that is not there costs the whole
 * timeout, for every VM without qemu-ga and every one still booting; this costs one monitor round trip.
 * Undefined when QEMU's monitor does not answer or has no such port.
 */
export async function agentPortOpenOn(qmp: QmpConnection, timeoutMs: number): Promise<boolean | undefined> {
  const chardev = (await queryChardev(qmp, { timeoutMs })).find((c) => c.label === GUEST_AGENT_CHARDEV);
  return chardev?.['frontend-open'];
}

/** agentPortOpenOn over its own connection to the monitor at `qmpSocket`. */
export async function agentPortOpen(qmpSocket: string, timeoutMs: number): Promise<boolean | undefined> {
  let qmp: QmpConnection | undefined;
  try {
    qmp = await QmpConnection.connect(qmpSocket, { timeoutMs });
    return await agentPortOpenOn(qmp, timeoutMs);
  } catch {
    return undefined;
  } finally {
    qmp?.close();
  }
}
