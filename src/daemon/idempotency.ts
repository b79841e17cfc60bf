/**
 * A change sent again with the same `Idempotency-Key` gets the first answer again instead of being done twice.
 *
 * Why: a browser on the daemon's own host loses the answer to the very request that made a bridge or a tap
 * (network create, instance start, NIC attach): Chromium cancels requests in flight when the host's links
 * change (net::ERR_NETWORK_CHANGED), although the daemon did the work. The web UI sends a key with every
 * change and sends it again after such a failure; it then gets the answer it missed, or waits for it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalid, VirtnodeError } from '../lib/errors.ts';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
const KEY = /^[A-Za-z0-9_-]{8,128}$/;

interface Answer {
  status: number;
  contentType: string | undefined;
  body: string | Buffer;
}

interface Entry {
  /** The request it answers: one key is never used for another. */
  request: string;
  at: number;
  answer: Promise<Answer | undefined>;
  settle: (answer: Answer | undefined) => void;
}

declare module 'fastify' {
  interface FastifyRequest {
    idempotencyEntry: Entry | undefined;
  }
}

export interface IdempotencyOptions {
  /** How long an answer is kept for a repeat. */
  keepMs?: number;
  /** The most answers kept (the oldest go first). */
  maxEntries?: number;
}

/** Registers the hooks on `app`; run it after the hook that sets `authenticatedAs` (keys are per client). */
export function replayRepeatedChanges(app: FastifyInstance, options: IdempotencyOptions = {}): void {
  const keepMs = options.keepMs ?? 10 * 60_000;
  const maxEntries = options.maxEntries ?? 1000;
  const entries = new Map<string, Entry>();

  const forget = (now: number): void => {
    for (const [key, entry] of entries) {
      if (entries.size <= maxEntries && now - entry.at < keepMs) break; // in insertion order: the rest are newer
      entries.delete(key);
      entry.settle(undefined);
    }
  };

  app.decorateRequest('idempotencyEntry', undefined);
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers[IDEMPOTENCY_HEADER];
    if (header === undefined || request.method === 'GET' || request.method === 'HEAD') return;
    if (typeof header !== 'string' || !KEY.test(header)) {
      throw invalid(IDEMPOTENCY_HEADER, 'must be 8 to 128 letters, digits, - or _', 'send a fresh random value (a UUID) with each change');
    }
    const now = Date.now();
    forget(now);
    const key = `${request.authenticatedAs ?? '-'}\u0000${header}`;
    const what = `${request.method} ${request.url}`;
    const earlier = entries.get(key);
    if (earlier !== undefined) {
      if (earlier.request !== what) {
        throw new VirtnodeError('CONFLICT', `${IDEMPOTENCY_HEADER}: this key was sent with ${earlier.request}`, { field: IDEMPOTENCY_HEADER, hint: 'send a new key with each change' });
      }
      const answer = await earlier.answer;
      if (answer !== undefined) {
        void reply.code(answer.status).header('idempotent-replayed', 'true');
        if (answer.contentType !== undefined) void reply.type(answer.contentType);
        return reply.send(answer.body);
      }
      // The first one ended without an answer to keep: this one is done as if it came first.
    }
    let settle: (answer: Answer | undefined) => void = () => {};
    const answer = new Promise<Answer | undefined>((resolve) => (settle = resolve));
    const entry: Entry = { request: what, at: now, answer, settle };
    entries.delete(key);
    entries.set(key, entry);
    request.idempotencyEntry = entry;
    return undefined;
  });

  // Runs for every answer, errors included, and still after the client has gone away.
  app.addHook('onSend', async (request, reply, payload) => {
    const entry = request.idempotencyEntry;
    if (entry === undefined) return payload;
    request.idempotencyEntry = undefined;
    if (typeof payload === 'string' || Buffer.isBuffer(payload)) {
      const type = reply.getHeader('content-type');
      entry.settle({ status: reply.statusCode, contentType: typeof type === 'string' ? type : undefined, body: payload });
    } else {
      entry.settle(undefined); // a stream: not kept
    }
    return payload;
  });
  app.addHook('onResponse', async (request) => {
    request.idempotencyEntry?.settle(undefined);
  });
}
