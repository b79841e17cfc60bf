import type { OperationView } from '../../api/views.ts';
import type { OperationApi, OperationQuery } from '../../client/operations.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { isAlive } from '../../lib/proc.ts';
import type { Db } from '../../store/db.ts';
import { OperationRepository } from '../../store/operations.ts';

const POLL_MS = 250;

/**
 * Operations without the daemon: they only run in a daemon, so here they are read from its table (finished ones,
 * and any it is running when this call was told to bypass it with VIRTNODE_NO_DAEMON=1).
 */
export class LocalOperations implements OperationApi {
  readonly via = 'local' as const;
  private readonly repo: OperationRepository;

  constructor(db: Db) {
    this.repo = new OperationRepository(db);
  }

  async list(query: OperationQuery): Promise<OperationView[]> {
    return this.repo.list({ limit: query.limit ?? 100, ...(query.status === undefined ? {} : { status: query.status }) });
  }

  async get(id: string): Promise<OperationView> {
    const view = this.repo.get(id);
    if (view === undefined) throw new VirtnodeError('NOT_FOUND', `operation ${id} does not exist`, { hint: 'operations are kept for 7 days after they end (the last 1,000): see `virtnode operation ls`' });
    return view;
  }

  async wait(id: string, timeoutMs: number): Promise<OperationView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const view = await this.get(id);
      if (view.status !== 'running') return view;
      this.mustHaveDaemon(id);
      if (Date.now() >= deadline) return view;
      await new Promise((r) => setTimeout(r, Math.min(POLL_MS, deadline - Date.now())));
    }
  }

  async cancel(id: string): Promise<OperationView> {
    const view = await this.get(id);
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
