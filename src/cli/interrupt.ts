/**
 * Runs `fn` with a signal that Ctrl-C (or SIGTERM) aborts, so long work stops cleanly and says what it kept; a
 * second Ctrl-C exits at once, without waiting for the clean-up.
 */
export async function interruptibly<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await fn(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
