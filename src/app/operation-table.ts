import type { OperationStatus, OperationView } from '../api/schemas.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { isAlive } from '../lib/proc.ts';
import type { Db } from '../store/db.ts';
import { OperationRepository } from '../store/operations.ts';
import { type OperationLog, operationNotFound } from './operation-log.ts';

const POLL_MS = 250;

/**
 * Operations without the daemon: they only run in a daemon, so here they are read from its table (finished ones,
 * and any it is running when this call was told to bypass it with VIRTNODE_NO_DAEMON=1).
 */
export class OperationTable implements OperationLog {
  private readonly repo: OperationRepository;

  constructor(db: Db) {
    this.repo = new OperationRepository(db);
  }

  list(query: { limit: number; status?: OperationStatus }): OperationView[] {
    return this.repo.list(query);
  }

  get(id: string): OperationView {
    const view = this.repo.get(id);
    if (view === undefined) throw operationNotFound(id);
    return view;
  }

  async wait(id: string, timeoutMs: number, progressAfter?: number): Promise<OperationView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const view = this.get(id);
      if (view.status !== 'running' || (progressAfter !== undefined && view.progress.entries.length > progressAfter)) return view;
      this.mustHaveDaemon(id);
      if (Date.now() >= deadline) return view;
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, deadline - Date.now())));
    }
  }

  cancel(id: string): OperationView {
    const view = this.get(id);
    if (view.status !== 'running') throw new VirtnodeError('INVALID_STATE', `operation ${id} is already ${view.status}`);
    this.mustHaveDaemon(id);
    throw new VirtnodeError('INVALID_STATE', `operation ${id} runs in the daemon, and this call does not go through it`, { hint: 'unset VIRTNODE_NO_DAEMON to cancel it through the daemon' });
  }

  /** A `running` row whose daemon is gone stays so until the next daemon starts and marks it failed. */
  private mustHaveDaemon(id: string): void {
    const owner = this.repo.running().find((r) => r.view.id === id)?.owner;
    if (owner !== undefined && !isAlive(owner)) {
      throw new VirtnodeError('INTERRUPTED', `operation ${id} was running in a daemon that stopped (pid ${owner.pid}); it did not finish`, {
        hint: 'start the daemon (`virtnode daemon`): it repairs the instance and marks the operation failed',
      });
    }
  }
}
