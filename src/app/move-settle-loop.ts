/**
 * The daemon's settling of live moves whose end a crash hid, while it serves its cluster membership: every few
 * seconds (and at once when it starts) the target's part (move-arrivals.ts: adopt a guest that runs here and that
 * its source did not adopt) and the source's part (move-settle.ts: forget a guest the target adopted, send the
 * adopt step, or undo the move the target does not run).
 */
import type { ClusterService } from '../cluster/service.ts';
import { toVirtnodeError } from '../lib/errors.ts';
import { serialPasses } from '../lib/serial-passes.ts';
import type { AppCore } from './context.ts';
import { MOVES_PEER_PATH } from './instances-move.ts';
import { type IncomingMoves, settleArrivals } from './move-arrivals.ts';
import { type MoveStatus, type SettleSteps, settleOutgoing } from './move-settle.ts';

const LOOP_MS = 2_000;
const STEP_MS = 10_000;

export function moveSettleLoop(app: AppCore, c: ClusterService, incoming: IncomingMoves): { stop: () => Promise<void> } {
  const log = (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) =>
    process.stderr.write(`${JSON.stringify({ level, msg, component: 'moves', host: c.host, at: new Date().toISOString(), ...fields })}\n`);
  const steps: SettleSteps = {
    status: (to, id, instance) => c.peer<MoveStatus>(to, MOVES_PEER_PATH, { step: 'status', id, name: instance.name, uuid: instance.uuid }, STEP_MS),
    adopt: (to, id, instance, policy) => c.peer<{ claimError?: string }>(to, MOVES_PEER_PATH, { step: 'adopt', id, instance, policy }, 60_000),
    abort: async (to, id, name, reason) => {
      await c.peer(to, MOVES_PEER_PATH, { step: 'abort', id, name, reason }, 60_000);
    },
  };
  const passes = serialPasses(
    async () => {
      if (c.fenced !== undefined || c.host === undefined) return;
      await settleArrivals(app, c, incoming, log);
      await settleOutgoing(app, c, steps, log);
    },
    (e: unknown) => log('warn', 'settling of moves failed', { err: toVirtnodeError(e).message }),
  );
  const timer = setInterval(() => passes.request(), LOOP_MS);
  timer.unref();
  passes.request();
  return {
    stop: async () => {
      clearInterval(timer);
      await passes.stop();
    },
  };
}
