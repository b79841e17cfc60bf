import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { type OperationLog, operationNotFound } from '../app/operation-log.ts';
import type { OperationContext } from '../app/operations.ts';
import { toVirtnodeError, VirtnodeError } from '../lib/errors.ts';
import { isAlive, selfIdentity } from '../lib/proc.ts';
import type { OperationStatus, OperationView } from '../api/schemas.ts';
import type { OperationRepository } from '../store/operations.ts';
import type { EventBus } from './events.ts';
import { operationScope } from './operation-scope.ts';

export type { OperationView } from '../api/schemas.ts';

interface Operation {
  view: OperationView;
  controller: AbortController;
  started: number;
  done: Promise<void>;
  /** Woken on every change, for long-polling waiters. */
  waiters: Set<() => void>;
  lastPublished: number;
  lastSaved: number;
}

const PUBLISH_INTERVAL_MS = 250;
/** Transfer progress reaches the database at most this often (phases and the outcome are written at once). */
const SAVE_TRANSFER_INTERVAL_MS = 5_000;

export const INTERRUPTED_MESSAGE = 'the daemon stopped while this operation ran';

/** How long a stopping daemon waits for aborted operations to wind up before it exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

/** How many operations of one kind (launch, image-pull...) a daemon runs at once; more are refused, not queued. */
export const MAX_OPERATIONS_PER_KIND = Number(process.env['VIRTNODE_MAX_OPERATIONS_PER_KIND'] ?? 16);

/**
 * Long operations of the API (launch, stop, image pull...): run in the background, reported as a resource with
 * status, progress and result, waited on by long-polling and cancelled through an AbortSignal into the core.
 * Running ones live here; every one is also a row (src/store/operations.ts) written as it starts, at each phase
 * and when it ends, so finished operations outlive the daemon, and one a dead daemon left `running` is marked
 * failed by the next (`recoverInterrupted`).
 */
export class OperationManager implements OperationLog {
  private readonly running = new Map<string, Operation>();
  private readonly events: EventBus;
  private readonly repo: OperationRepository;
  private readonly log: Logger | undefined;
  private readonly onFinish: ((view: OperationView) => void) | undefined;
  private readonly maxPerKind: number;
  private readonly owner = selfIdentity();
  private stopping = false;

  constructor(events: EventBus, repo: OperationRepository, options: { onFinish?: (view: OperationView) => void; log?: Logger; maxPerKind?: number } = {}) {
    this.events = events;
    this.repo = repo;
    this.log = options.log;
    this.onFinish = options.onFinish;
    this.maxPerKind = options.maxPerKind ?? MAX_OPERATIONS_PER_KIND;
  }

  start(kind: string, target: string | undefined, work: (ctx: OperationContext) => Promise<unknown>, options: { startedBy?: string } = {}): OperationView {
    const sameKind = [...this.running.values()].filter((op) => op.view.kind === kind).length;
    if (sameKind >= this.maxPerKind) {
      throw new VirtnodeError('BUSY', `${sameKind} ${kind} operations are running, as many as this daemon runs at once`, {
        hint: 'wait for one to finish (`virtnode operation ls`), then try again',
      });
    }
    const id = randomUUID();
    const controller = new AbortController();
    const started = Date.now();
    const view: OperationView = {
      id,
      kind,
      ...(target === undefined ? {} : { target }),
      status: 'running',
      progress: { entries: [] },
      createdAt: new Date(started).toISOString(),
      ...(options.startedBy === undefined ? {} : { startedBy: options.startedBy }),
    };
    this.repo.insert(view, this.owner);
    const op: Operation = { view, controller, started, done: Promise.resolve(), waiters: new Set(), lastPublished: 0, lastSaved: started };
    const ctx: OperationContext = {
      id,
      signal: controller.signal,
      phase: (phase, detail) => {
        view.progress.phase = phase;
        view.progress.detail = detail;
        view.progress.entries.push({ phase, detail, elapsedMs: Date.now() - started });
        this.log?.info({ kind, target, phase, detail }, 'operation progress');
        this.save(op);
        this.changed(op, true);
      },
      transfer: (bytes, totalBytes, expectedRemainingSeconds) => {
        view.progress.bytes = bytes;
        if (expectedRemainingSeconds === undefined) delete view.progress.expectedRemainingSeconds;
        else view.progress.expectedRemainingSeconds = expectedRemainingSeconds;
        if (totalBytes !== undefined && totalBytes > 0) {
          view.progress.totalBytes = totalBytes;
          view.progress.percent = Math.min(100, Math.round((bytes / totalBytes) * 1000) / 10);
        }
        if (Date.now() - op.lastSaved >= SAVE_TRANSFER_INTERVAL_MS) this.save(op);
        this.changed(op, false);
      },
    };
    this.running.set(id, op);
    // Everything the work does (and logs) runs in the operation's scope: log lines carry its id.
    op.done = operationScope.run({ operation: id }, async () => {
      this.log?.info({ kind, target }, 'operation started');
      try {
        view.result = await work(ctx);
        view.status = 'succeeded';
      } catch (e) {
        // The core's own account of an interruption (code TIMEOUT, e.g. "download of URL was interrupted after
        // 192 KiB of 576 KiB", with how to resume) says more than "cancelled", and is what the CLI prints when
        // Ctrl-C stops the same work in-process; the CLI through the daemon then prints it too. A daemon that
        // stops says so instead.
        const why = this.stopping ? ' because the daemon stopped (SIGTERM): run it again once the daemon is back' : '';
        const interrupted = e instanceof VirtnodeError && e.code === 'TIMEOUT' && !this.stopping;
        const error = controller.signal.aborted && !interrupted ? new VirtnodeError('INVALID_STATE', `operation ${id} was cancelled${why}`, { cause: e }) : toVirtnodeError(e);
        view.status = controller.signal.aborted ? 'cancelled' : 'failed';
        view.error = { code: error.code, message: error.message, ...(error.hint === undefined ? {} : { hint: error.hint }) };
      }
      view.finishedAt = new Date().toISOString();
      try {
        this.repo.finish(view);
        this.repo.prune();
      } catch (e) {
        this.log?.error({ err: toVirtnodeError(e) }, 'could not record the end of an operation');
      }
      this.running.delete(id);
      this.changed(op, true);
      this.onFinish?.(view);
    });
    this.changed(op, true);
    return view;
  }

  get(id: string): OperationView {
    return this.running.get(id)?.view ?? this.stored(id);
  }

  /** Newest first; running ones with their latest progress. */
  list(query: { limit: number; status?: OperationStatus }): OperationView[] {
    return this.repo.list(query).map((v) => this.running.get(v.id)?.view ?? v);
  }

  /** Asks the operation to stop (the core honours the signal where it can); returns at once. */
  cancel(id: string): OperationView {
    const op = this.running.get(id);
    if (op === undefined) {
      const view = this.stored(id);
      if (view.status === 'running') throw new VirtnodeError('INVALID_STATE', `operation ${id} is run by another daemon process (pid ${this.repo.running().find((r) => r.view.id === id)?.owner.pid ?? '?'})`);
      throw new VirtnodeError('INVALID_STATE', `operation ${id} is already ${view.status}`);
    }
    op.controller.abort();
    return op.view;
  }

  /** Returns when the operation finishes, when it has more than `progressAfter` entries, or after `timeoutMs`. */
  async wait(id: string, timeoutMs: number, progressAfter?: number): Promise<OperationView> {
    const op = this.running.get(id);
    if (op === undefined) return this.stored(id);
    const ready = () => op.view.status !== 'running' || (progressAfter !== undefined && op.view.progress.entries.length > progressAfter);
    if (ready() || timeoutMs <= 0) return op.view;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, timeoutMs);
      function finish() {
        clearTimeout(timer);
        op!.waiters.delete(check);
        resolve();
      }
      const check = () => {
        if (ready()) finish();
      };
      op.waiters.add(check);
    });
    return op.view;
  }

  /**
   * At daemon start, after reconcile: operations a dead daemon left `running` are marked failed (INTERRUPTED),
   * and old history is pruned. Returns the ids marked.
   */
  recoverInterrupted(): string[] {
    const marked: string[] = [];
    for (const { view, owner } of this.repo.running()) {
      if (this.running.has(view.id) || isAlive(owner)) continue;
      view.status = 'failed';
      view.error = {
        code: 'INTERRUPTED',
        message: `${INTERRUPTED_MESSAGE} (daemon pid ${owner.pid}), so it did not finish; reconcile repaired the state of ${view.target ?? 'what it worked on'} when the daemon started again`,
        hint: `${view.target?.startsWith('instances/') ? `see \`virtnode info ${view.target.slice('instances/'.length)}\`` : `check ${view.target ?? 'the resource'}`}, then run the operation again if it is still needed`,
      };
      view.finishedAt = new Date().toISOString();
      this.repo.finish(view);
      this.log?.warn({ operation: view.id, kind: view.kind, target: view.target, ownerPid: owner.pid }, 'operation interrupted by a daemon stop: marked failed');
      this.events.publish({ type: 'operation', operation: structuredClone(view), at: view.finishedAt });
      marked.push(view.id);
    }
    this.repo.prune();
    return marked;
  }

  /**
   * Aborts everything still running (daemon shutdown) and waits for it to settle, at most `graceMs`: work that
   * does not heed the abort by then is left as it is; its row stays `running`, and the next daemon marks it failed.
   */
  async shutdown(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    this.stopping = true;
    const running = [...this.running.values()];
    for (const op of running) op.controller.abort();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.allSettled(running.map((o) => o.done)), grace]);
    clearTimeout(timer);
  }

  private stored(id: string): OperationView {
    const view = this.repo.get(id);
    if (view === undefined) throw operationNotFound(id);
    return view;
  }

  private save(op: Operation): void {
    op.lastSaved = Date.now();
    try {
      this.repo.saveProgress(op.view.id, op.view.progress);
    } catch (e) {
      // Progress is a convenience: a busy database must not fail the work itself.
      this.log?.warn({ err: toVirtnodeError(e) }, 'could not record operation progress');
    }
  }

  private changed(op: Operation, always: boolean): void {
    for (const waiter of [...op.waiters]) waiter();
    const now = Date.now();
    if (!always && now - op.lastPublished < PUBLISH_INTERVAL_MS) return;
    op.lastPublished = now;
    this.events.publish({ type: 'operation', operation: structuredClone(op.view), at: new Date(now).toISOString() });
  }
}
