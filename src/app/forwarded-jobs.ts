/**
 * Long work one host asks another to do (a launch placed on another host, a stop of an instance it runs...) runs
 * there inline, to its end, inside the cluster API request. So that the asking host's operation shows it as a local
 * one would and can cancel it, the asker names the work with an id of its own (its operation's): the host doing it
 * records every phase and transfer under that id and keeps its abort controller there; the asker polls the record
 * while the work runs, replays what it has not shown yet, and asks for the abort when its own operation is cancelled.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PeerRoute } from '../cluster/peer-http.ts';
import type { ClusterService } from '../cluster/service.ts';
import { invalid } from '../lib/errors.ts';
import type { Job, OperationContext } from './operations.ts';

export const FORWARDED_JOBS_PEER_PATH = '/v1/forwarded-jobs';
const POLL_MS = 500;
const POLL_TIMEOUT_MS = 5_000;
/** How long a finished job's record (or a cancel that came before its job) is kept for the asker's last look. */
const KEEP_MS = 60_000;
const ID_RE = /^[A-Za-z0-9-]{8,64}$/;

interface Progress {
  phases: Array<{ phase: string; detail: string }>;
  bytes: number;
  totalBytes?: number;
  expectedRemainingSeconds?: number;
}

interface Followed {
  progress: Progress;
  controller: AbortController;
}

const followed = new Map<string, Followed>();

function forget(id: string, entry: Followed): void {
  setTimeout(() => {
    if (followed.get(id) === entry) followed.delete(id);
  }, KEEP_MS).unref();
}

/** Runs `work` here for another host, recorded under its id so that host can follow and cancel it. */
export async function runFollowed<T>(work: Job<T>, id: string): Promise<T> {
  if (!ID_RE.test(id)) throw invalid('follow', `"${id}" is not an operation id`);
  // A cancel may have come before the work (the asker gave up while its request was on its way).
  const entry = followed.get(id) ?? { progress: { phases: [], bytes: 0 }, controller: new AbortController() };
  followed.set(id, entry);
  const { progress, controller } = entry;
  try {
    controller.signal.throwIfAborted();
    return await work.run({
      id,
      signal: controller.signal,
      phase: (phase, detail) => void progress.phases.push({ phase, detail }),
      transfer: (bytes, totalBytes, expectedRemainingSeconds) => {
        progress.bytes = bytes;
        if (totalBytes === undefined) delete progress.totalBytes;
        else progress.totalBytes = totalBytes;
        if (expectedRemainingSeconds === undefined) delete progress.expectedRemainingSeconds;
        else progress.expectedRemainingSeconds = expectedRemainingSeconds;
      },
    });
  } finally {
    forget(id, entry);
  }
}

/** The route the asker polls (`{id}`: the progress so far) and cancels through (`{id, cancel: true}`). */
export function forwardedJobsPeerRoute(): PeerRoute {
  return {
    handle: async (body) => {
      const { id, cancel } = body as { id?: unknown; cancel?: unknown };
      if (typeof id !== 'string' || !ID_RE.test(id)) throw invalid('id', 'not an operation id');
      let entry = followed.get(id);
      if (cancel === true) {
        if (entry === undefined) {
          entry = { progress: { phases: [], bytes: 0 }, controller: new AbortController() };
          followed.set(id, entry);
          forget(id, entry);
        }
        entry.controller.abort();
      }
      return entry?.progress ?? { phases: [], bytes: 0 };
    },
  };
}

/**
 * While work forwarded to `host` under `id` runs, shows its phases and transfer in this host's operation (each
 * detail marked `(on HOST)`), and cancels it there when this operation is cancelled. Returns a stop function that
 * relays what is left once more. Failures to ask are ignored (the work itself reports).
 */
export function followRemote(c: ClusterService, host: string, id: string, ctx: OperationContext): () => Promise<void> {
  let shown = 0;
  let bytes = -1;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const ask = (cancel: boolean) => c.peer<Progress>(host, FORWARDED_JOBS_PEER_PATH, { id, ...(cancel ? { cancel } : {}) }, POLL_TIMEOUT_MS);
  const relay = (p: Progress) => {
    for (const e of p.phases.slice(shown)) ctx.phase(e.phase, `${e.detail} (on ${host})`);
    shown = Math.max(shown, p.phases.length);
    if (p.bytes !== bytes && p.bytes > 0) {
      bytes = p.bytes;
      ctx.transfer(p.bytes, p.totalBytes, p.expectedRemainingSeconds);
    }
  };
  const pollOnce = async () => {
    const p = await ask(false).catch(() => undefined);
    if (p !== undefined) relay(p);
  };
  const cancel = () => {
    void (async () => {
      // The cancel must reach the host doing the work: a few tries while it answers slowly.
      for (let attempt = 0; attempt < 5 && !stopped; attempt++) {
        if (await ask(true).then(() => true, () => false)) return;
        await sleep(POLL_MS);
      }
    })();
  };
  if (ctx.signal.aborted) cancel();
  else ctx.signal.addEventListener('abort', cancel, { once: true });
  let running: Promise<void> = Promise.resolve();
  const loop = () => {
    timer = setTimeout(() => {
      running = pollOnce().finally(() => {
        if (!stopped) loop();
      });
    }, POLL_MS);
  };
  loop();
  return async () => {
    stopped = true;
    ctx.signal.removeEventListener('abort', cancel);
    clearTimeout(timer);
    await running;
    await pollOnce();
  };
}
