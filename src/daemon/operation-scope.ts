import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The operation the current code runs for. The daemon's logger adds it to every line (pino `mixin`), so whatever
 * an operation's work logs, however deep, carries `operation: ID` without passing a logger around.
 */
export const operationScope = new AsyncLocalStorage<{ operation: string }>();

export function operationLogFields(): { operation?: string } {
  const scope = operationScope.getStore();
  return scope === undefined ? {} : { operation: scope.operation };
}
