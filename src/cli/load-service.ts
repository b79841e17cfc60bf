import type { InstanceService } from '../instances/service.ts';

/**
 * The instance service, loaded when a command runs rather than when the CLI declares its commands, so a call
 * pays only for what it uses.
 */
export async function loadInstanceService(): Promise<InstanceService> {
  const { instances } = await import('./context.ts');
  return instances();
}
