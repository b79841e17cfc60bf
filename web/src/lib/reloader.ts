export interface ReloaderEvents<T> {
  loaded(value: T): void;
  failed(error: unknown): void;
}

export interface RetryPolicy {
  /** Whether a failed load is worth trying again by itself (a dropped connection, a 5xx), not a 404. */
  retryable(error: unknown): boolean;
  firstPauseMs: number;
  maxPauseMs: number;
}

export interface Reloader {
  /** Loads again; resolves once a load that started after this call has ended (loaded or failed). */
  reload(): Promise<void>;
  /** No more loads, retries or callbacks. */
  stop(): void;
}

/**
 * Loads one thing again whenever asked, one load at a time: a request during a load asks for one more after it,
 * so an older answer never lands after a newer one. A load that fails for a passing reason is tried again after
 * a pause that doubles each time, so a page does not stay empty because one request was lost with nothing
 * else to ask for it again.
 */
export function reloader<T>(load: () => Promise<T>, on: ReloaderEvents<T>, retry: RetryPolicy): Reloader {
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pauseMs = retry.firstPauseMs;

  const run = async (): Promise<void> => {
    do {
      again = false;
      clearTimeout(timer);
      try {
        const value = await load();
        if (stopped) return;
        pauseMs = retry.firstPauseMs;
        on.loaded(value);
      } catch (error) {
        if (stopped) return;
        on.failed(error);
        if (!again && retry.retryable(error)) {
          timer = setTimeout(() => void reload(), pauseMs);
          pauseMs = Math.min(pauseMs * 2, retry.maxPauseMs);
        }
      }
    } while (again && !stopped);
  };

  const reload = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = run().finally(() => {
      running = undefined;
    });
    return running;
  };

  return {
    reload,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
