/**
 * How the application layer implements a contract: each endpoint of a table gets a handler taking the endpoint's
 * input. A plain call returns its output; long work validates first (bad input is refused before anything is
 * made) and returns a `Job` for the front's operation runner.
 */
import type { EndpointSpec, EndpointTable, Input, Output } from '../api/endpoint.ts';
import type { AppCore } from './context.ts';
import type { Job } from './operations.ts';

/**
 * Who asks, as the front that received the call knows it (never something a client sends): `remote`, a client
 * over TCP, may name only some host paths (src/app/request-paths.ts). Absent: the host's own user.
 */
export interface Caller {
  remote?: boolean;
}

export type Handler<E extends EndpointSpec> = E['operation'] extends true
  ? (input: Input<E>, caller?: Caller) => Promise<Job<Output<E>>>
  : (input: Input<E>, caller?: Caller) => Promise<Output<E>>;

export type Implementation<T extends EndpointTable> = { [K in keyof T]: Handler<T[K]> };

/** A resource of the API: its endpoint table (the contract) and the implementation over the core. */
export interface Resource<T extends EndpointTable = EndpointTable> {
  /** The OpenAPI tag of its routes. */
  tag: string;
  endpoints: T;
  implement(core: AppCore): Implementation<T>;
}

export function resource<const T extends EndpointTable>(tag: string, endpoints: T, implement: (core: AppCore) => Implementation<T>): Resource<T> {
  return { tag, endpoints, implement };
}

/** Calls a handler whatever its table entry (the fronts treat every endpoint alike). */
export type AnyHandler = (input: Record<string, unknown>, caller?: Caller) => Promise<unknown>;
export function handlerOf(impl: object, name: string): AnyHandler {
  return (impl as Record<string, AnyHandler>)[name]!.bind(impl);
}
