/**
 * Crash injection for tests: when VIRTNODE_FAILPOINT names this point, the process kills itself with SIGKILL
 * right here, exactly as a power cut or `kill -9` would. Reconciliation must then repair everything.
 */
export function failpoint(name: string): void {
  if (process.env['VIRTNODE_FAILPOINT'] === name) process.kill(process.pid, 'SIGKILL');
}

/**
 * Race injection for tests: when VIRTNODE_DELAYPOINT is `NAME:MS`, the operation waits here that long, so a test
 * can run a second operation into the window deterministically.
 */
export async function delaypoint(name: string): Promise<void> {
  const [point, ms] = (process.env['VIRTNODE_DELAYPOINT'] ?? '').split(':');
  if (point === name) await new Promise((resolve) => setTimeout(resolve, Number(ms)));
}
