/**
 * The API in this process: each call goes straight to the application layer, long work runs inline with its
 * progress reported to the caller. Answers are ordered by their schemas, as the HTTP client orders the daemon's,
 * so both print the same.
 */
import type { Api } from '../api/contracts/index.ts';
import { type CallOptions, orderBySchema } from '../api/endpoint.ts';
import type { AppCore } from './context.ts';
import { RESOURCES } from './index.ts';
import { type Job, runInline } from './operations.ts';
import { handlerOf, type Resource } from './resource.ts';

export function localApi(core: AppCore): Api {
  const api: Record<string, unknown> = {};
  for (const [key, res] of Object.entries(RESOURCES) as Array<[string, Resource]>) {
    let impl: object | undefined;
    const calls: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(res.endpoints)) {
      calls[name] = async (input: Record<string, unknown> = {}, options: CallOptions = {}) => {
        impl ??= res.implement(core);
        const out = await handlerOf(impl, name)(input);
        const result = spec.operation === true ? await runInline(out as Job<unknown>, options) : out;
        return orderBySchema(spec.response, result);
      };
    }
    api[key] = calls;
  }
  return api as Api;
}
