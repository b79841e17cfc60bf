/**
 * `virtnode clone SRC NEW --start`: the clone, then a start of the new instance, answered as one clone outcome
 * whose instance is the started one. Over the `Api`, so it is the same in this process and through the daemon
 * (the REST clone itself has no `start`).
 */
import type { Api } from '../api/contracts/index.ts';
import type { CloneOutcome, templateEndpoints } from '../api/contracts/templates.ts';
import type { CallOptions, Input } from '../api/endpoint.ts';

export type CloneInput = Input<typeof templateEndpoints.clone> & { start?: boolean };

export async function cloneAndStart(api: Api, { start, ...input }: CloneInput, options: CallOptions = {}): Promise<CloneOutcome> {
  const outcome = await api.templates.clone(input, options);
  if (start !== true) return outcome;
  return { ...outcome, instance: await api.instances.start({ name: outcome.instance.name }) };
}
