/**
 * Long work (launch, pull, build, stop, snapshots, clones) is written once, as a `Job`: what it is, what it acts
 * on, and the work itself, given an `OperationContext` to report progress and to be cancelled. Who runs it is the
 * front's choice: the daemon's operation manager (202 + an operation resource, progress as events, cancel over
 * the API) or `runInline` in the CLI's own process (progress printed as it happens, Ctrl-C aborts).
 */
import type { CallOptions } from '../api/endpoint.ts';

export interface OperationContext {
  /** The operation's id (inline: a fresh one, for logs). */
  id: string;
  signal: AbortSignal;
  /** A named step (kept in the operation's `entries`, e.g. launch phases). */
  phase(phase: string, detail: string): void;
  /**
   * Transfer progress (published at most a few times a second); `expectedRemainingSeconds` when the work has its own
   * estimate of the time left (a live move's), rather than the rate so far.
   */
  transfer(bytes: number, totalBytes: number | undefined, expectedRemainingSeconds?: number): void;
}

export interface Job<T> {
  kind: string;
  /** What it acts on, e.g. `instances/web`, `images/debian-12`. */
  target?: string;
  run(ctx: OperationContext): Promise<T>;
}

export function job<T>(kind: string, target: string | undefined, run: (ctx: OperationContext) => Promise<T>): Job<T> {
  return { kind, ...(target === undefined ? {} : { target }), run };
}

/** Runs a job in this process, to its end, reporting progress to the caller's listeners. */
export async function runInline<T>(work: Job<T>, options: CallOptions = {}): Promise<T> {
  const started = Date.now();
  const controller = new AbortController();
  const abort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted === true) abort();
  else options.signal?.addEventListener('abort', abort, { once: true });
  try {
    return await work.run({
      id: crypto.randomUUID(),
      signal: controller.signal,
      phase: (phase, detail) => options.onPhase?.(phase, detail, Date.now() - started),
      transfer: (bytes, totalBytes, expectedRemainingSeconds) => options.onTransfer?.(bytes, totalBytes, expectedRemainingSeconds),
    });
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
}
