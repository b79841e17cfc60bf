import { randomUUID } from 'node:crypto';
import { toVirtnodeError, VirtnodeError } from '../lib/errors.ts';
import type { OperationView } from '../api/views.ts';
import type { EventBus } from './events.ts';

export type { OperationView } from '../api/views.ts';

export interface OperationContext {
  id: string;
  signal: AbortSignal;
  /** A named step (kept in `entries`, e.g. launch phases). */
  phase(phase: string, detail: string): void;
  /** Transfer progress (not kept as entries; published at most a few times a second). */
  transfer(bytes: number, totalBytes: number | undefined): void;
}

interface Operation {
  view: OperationView;
  controller: AbortController;
  started: number;
  done: Promise<void>;
  /** Woken on every change, for long-polling waiters. */
  waiters: Set<() => void>;
  lastPublished: number;
}

const KEEP_FINISHED_MS = 60 * 60_000;
const KEEP_FINISHED_MAX = 1_000;
const PUBLISH_INTERVAL_MS = 250;

/**
 * Long operations of the API (launch, stop, image pull...): run in the background, reported as a resource with
 * status, progress and result, waited on by long-polling and cancelled through an AbortSignal into the core.
 * Kept in memory: a daemon restart forgets finished operations (the instances they made are in the database).
 */
export class OperationManager {
  private readonly operations = new Map<string, Operation>();
  private readonly events: EventBus;
  private readonly onFinish: ((view: OperationView) => void) | undefined;

  constructor(events: EventBus, options: { onFinish?: (view: OperationView) => void } = {}) {
    this.events = events;
    this.onFinish = options.onFinish;
  }

  start(kind: string, target: string | undefined, work: (ctx: OperationContext) => Promise<unknown>): OperationView {
    this.prune();
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
    };
    const op: Operation = { view, controller, started, done: Promise.resolve(), waiters: new Set(), lastPublished: 0 };
    const ctx: OperationContext = {
      id,
      signal: controller.signal,
      phase: (phase, detail) => {
        view.progress.phase = phase;
        view.progress.detail = detail;
        view.progress.entries.push({ phase, detail, elapsedMs: Date.now() - started });
        this.changed(op, true);
      },
      transfer: (bytes, totalBytes) => {
        view.progress.bytes = bytes;
        if (totalBytes !== undefined && totalBytes > 0) {
          view.progress.totalBytes = totalBytes;
          view.progress.percent = Math.min(100, Math.round((bytes / totalBytes) * 1000) / 10);
        }
        this.changed(op, false);
      },
    };
    this.operations.set(id, op);
    op.done = (async () => {
      try {
        view.result = await work(ctx);
        view.status = 'succeeded';
      } catch (e) {
        // The core's own account of an interruption (code TIMEOUT, e.g. "download of URL was interrupted after
        // 192 KiB of 576 KiB", with how to resume) says more than "cancelled", and is what the CLI prints when
        // Ctrl-C stops the same work in-process; the CLI through the daemon then prints it too.
        const interrupted = e instanceof VirtnodeError && e.code === 'TIMEOUT';
        const error = controller.signal.aborted && !interrupted ? new VirtnodeError('INVALID_STATE', `operation ${id} was cancelled`, { cause: e }) : toVirtnodeError(e);
        view.status = controller.signal.aborted ? 'cancelled' : 'failed';
        view.error = { code: error.code, message: error.message, ...(error.hint === undefined ? {} : { hint: error.hint }) };
      }
      view.finishedAt = new Date().toISOString();
      this.changed(op, true);
      this.onFinish?.(view);
    })();
    this.changed(op, true);
    return view;
  }

  get(id: string): OperationView {
    return this.mustGet(id).view;
  }

  list(): OperationView[] {
    return [...this.operations.values()].map((o) => o.view);
  }

  /** Asks the operation to stop (the core honours the signal where it can); returns at once. */
  cancel(id: string): OperationView {
    const op = this.mustGet(id);
    if (op.view.status !== 'running') {
      throw new VirtnodeError('INVALID_STATE', `operation ${id} is already ${op.view.status}`);
    }
    op.controller.abort();
    return op.view;
  }

  /** Returns when the operation finishes, when it has more than `progressAfter` entries, or after `timeoutMs`. */
  async wait(id: string, timeoutMs: number, progressAfter?: number): Promise<OperationView> {
    const op = this.mustGet(id);
    const ready = () => op.view.status !== 'running' || (progressAfter !== undefined && op.view.progress.entries.length > progressAfter);
    if (ready() || timeoutMs <= 0) return op.view;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(finish, timeoutMs);
      function finish() {
        clearTimeout(timer);
        op.waiters.delete(check);
        resolve();
      }
      const check = () => {
        if (ready()) finish();
      };
      op.waiters.add(check);
    });
    return op.view;
  }

  /** Aborts everything still running (daemon shutdown) and waits for it to settle. */
  async shutdown(): Promise<void> {
    const running = [...this.operations.values()].filter((o) => o.view.status === 'running');
    for (const op of running) op.controller.abort();
    await Promise.allSettled(running.map((o) => o.done));
  }

  private mustGet(id: string): Operation {
    const op = this.operations.get(id);
    if (op === undefined) throw new VirtnodeError('NOT_FOUND', `operation ${id} does not exist`, { hint: 'operations are kept for an hour after they finish, and not across daemon restarts' });
    return op;
  }

  private changed(op: Operation, always: boolean): void {
    for (const waiter of [...op.waiters]) waiter();
    const now = Date.now();
    if (!always && now - op.lastPublished < PUBLISH_INTERVAL_MS) return;
    op.lastPublished = now;
    this.events.publish({ type: 'operation', operation: structuredClone(op.view), at: new Date(now).toISOString() });
  }

  private prune(): void {
    const now = Date.now();
    const finished = [...this.operations.values()].filter((o) => o.view.status !== 'running');
    for (const op of finished) {
      if (now - Date.parse(op.view.finishedAt!) > KEEP_FINISHED_MS) this.operations.delete(op.view.id);
    }
    const excess = this.operations.size - KEEP_FINISHED_MAX;
    for (const op of finished.slice(0, Math.max(0, excess))) this.operations.delete(op.view.id);
  }
}
