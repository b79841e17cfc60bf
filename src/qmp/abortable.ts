import { connect as netConnect, type Socket } from 'node:net';
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

/**
 * Connects to a UNIX socket. Rejects with the raw errno error (callers map it to what it means for them) or,
 * when `signal` aborts, with `cancelled("connecting to WHAT at PATH")`; leaves no listener behind.
 */
export function openUnixSocket(path: string, signal: AbortSignal | undefined, what: string): Promise<Socket> {
  if (signal?.aborted) return Promise.reject(cancelled(`connecting to ${what} at ${path}`, signal));
  return new Promise((resolve, reject) => {
    const socket = netConnect(path);
    const finish = () => {
      socket.off('connect', onConnect);
      socket.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    const onConnect = () => {
      finish();
      resolve(socket);
    };
    const onError = (e: Error) => {
      finish();
      socket.destroy();
      reject(e);
    };
    const onAbort = () => {
      finish();
      socket.destroy();
      reject(cancelled(`connecting to ${what} at ${path}`, signal));
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
