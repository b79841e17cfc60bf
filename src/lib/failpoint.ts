/**
 * Crash injection for tests: when VIRTNODE_FAILPOINT names this point, the process kills itself with SIGKILL
 * right here, exactly as a power cut or `kill -9` would. Reconciliation must then repair everything.
 */
export function failpoint(name: string): void {
  if (process.env['VIRTNODE_FAILPOINT'] === name) process.kill(process.pid, 'SIGKILL');
}
