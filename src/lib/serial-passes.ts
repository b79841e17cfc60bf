/**
 * Runs an idempotent pass (a reconcile loop's work) one at a time: a request while a pass runs is remembered and
 * answered by one more pass after it, however many came. Errors go to `onError`; the loop carries on.
 */
export interface SerialPasses {
  /** Run a pass now, or once more after the one under way. */
  request(): void;
  /** No passes from now on; resolves when the one under way has ended. */
  stop(): Promise<void>;
}

export function serialPasses(pass: () => Promise<void>, onError: (e: unknown) => void): SerialPasses {
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;
  const request = () => {
    if (stopped) return;
    if (running !== undefined) {
      again = true;
      return;
    }
    running = pass()
      .catch(onError)
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          request();
        }
      });
  };
  return {
    request,
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}
