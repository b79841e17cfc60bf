/**
 * The progress of an image fetch for a launch, kept by the host doing it (by instance name) so the host that
 * forwarded the launch can show it in its own operation: it asks over the cluster API while the launch runs and
 * replays the phases and transfer numbers it has not shown yet.
 */
import type { PeerRoute } from '../cluster/peer-http.ts';
import type { ClusterService } from '../cluster/service.ts';
import { invalid } from '../lib/errors.ts';
import type { OperationContext } from './operations.ts';

export const IMAGE_FETCH_PEER_PATH = '/v1/image-fetch-progress';
const POLL_MS = 500;
const POLL_TIMEOUT_MS = 5_000;

interface FetchProgress {
  phases: Array<{ phase: string; detail: string }>;
  bytes: number;
  totalBytes?: number;
}

const byInstance = new Map<string, FetchProgress>();

/** A launch of `instance` is being checked again: what an earlier attempt recorded is no longer news. */
export function resetFetchProgress(instance: string): void {
  byInstance.delete(instance);
}

/** The operation context a fetch for `instance` reports to: passed through, and recorded for other hosts. */
export function recordingContext(ctx: OperationContext, instance: string): OperationContext {
  const state: FetchProgress = { phases: [], bytes: 0 };
  byInstance.set(instance, state);
  return {
    ...ctx,
    phase: (phase, detail) => {
      state.phases.push({ phase, detail });
      ctx.phase(phase, detail);
    },
    transfer: (bytes, totalBytes) => {
      state.bytes = bytes;
      if (totalBytes === undefined) delete state.totalBytes;
      else state.totalBytes = totalBytes;
      ctx.transfer(bytes, totalBytes);
    },
  };
}

export function fetchProgressPeerRoute(): PeerRoute {
  return {
    handle: async (body) => {
      const instance = (body as { instance?: unknown }).instance;
      if (typeof instance !== 'string') throw invalid('instance', 'missing');
      return byInstance.get(instance) ?? { phases: [], bytes: 0 };
    },
  };
}

/**
 * While a launch forwarded to `host` runs, shows its image fetch in this host's operation. Returns a stop
 * function that relays what is left once more. Failures to ask are ignored (the launch itself reports).
 */
export function followFetch(c: ClusterService, host: string, instance: string, ctx: OperationContext): () => Promise<void> {
  let shown = 0;
  let bytes = -1;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const pollOnce = async () => {
    const p = await c.peer<FetchProgress>(host, IMAGE_FETCH_PEER_PATH, { instance }, POLL_TIMEOUT_MS).catch(() => undefined);
    if (p === undefined) return;
    for (const e of p.phases.slice(shown)) ctx.phase(e.phase, `${e.detail} (on ${host})`);
    shown = Math.max(shown, p.phases.length);
    if (p.bytes !== bytes && p.phases.length > 0) {
      bytes = p.bytes;
      ctx.transfer(p.bytes, p.totalBytes);
    }
  };
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
    clearTimeout(timer);
    await running;
    await pollOnce();
  };
}
