/**
 * The API in this process: each call goes straight to the application layer, long work runs inline with its
 * progress reported to the caller. Answers are ordered by their schemas, as the HTTP client orders the daemon's,
 * so both print the same.
 */
import { API, type Api } from '../api/contracts/index.ts';
import { type CallOptions, type EndpointTable, orderBySchema } from '../api/endpoint.ts';
import type { AppCore } from './context.ts';
import { type Job, runInline } from './operations.ts';
import { RESOURCE_LOADERS } from './resource-loaders.ts';
import { handlerOf, type Resource } from './resource.ts';

export function localApi(core: AppCore): Api {
  const api: Record<string, unknown> = {};
  for (const [key, endpoints] of Object.entries(API) as Array<[keyof typeof API, EndpointTable]>) {
    let impl: Promise<object> | undefined;
    const calls: Record<string, unknown> = {};
    for (const [name, spec] of Object.entries(endpoints)) {
      calls[name] = async (input: Record<string, unknown> = {}, options: CallOptions = {}) => {
        impl ??= (RESOURCE_LOADERS[key]() as Promise<Resource>).then((res) => res.implement(core));
        const out = await handlerOf(await impl, name)(input);
        const result = spec.operation === true ? await runInline(out as Job<unknown>, options) : out;
        return orderBySchema(spec.response, result);
      };
    }
    api[key] = calls;
  }
  return api as Api;
}
