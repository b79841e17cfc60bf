import { VirtnodeError } from '../lib/errors.ts';

/** The error for an operation given up because its signal aborted (TIMEOUT, as run() reports a cancel). */
export function cancelled(what: string, signal: AbortSignal | undefined): VirtnodeError {
  return new VirtnodeError('TIMEOUT', `cancelled ${what}`, signal?.reason === undefined ? {} : { cause: signal.reason });
}

/** A timer that an abort cuts short (rejecting); leaves no timer or listener behind either way. */
export function sleep(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  if (signal?.aborted) return Promise.reject(cancelled(what, signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(cancelled(what, signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** `options` plus `signal` when there is one (exactOptionalPropertyTypes forbids `signal: undefined`). */
export function withSignal<T extends object>(options: T, signal: AbortSignal | undefined): T & { signal?: AbortSignal } {
  return signal === undefined ? options : { ...options, signal };
}
