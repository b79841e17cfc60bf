/**
 * The API's one description of each operation: method, path, the schemas of its input and output, and whether it
 * is long work (answered 202 with an operation). The daemon's routes, the HTTP client (CLI and web UI) and the
 * in-process application are all derived from these tables, so an operation is declared once and every front
 * agrees on its shape. No Node imports: the browser UI uses this file too.
 */
import type { Static, TObject, TSchema } from 'typebox';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface EndpointSpec {
  method: HttpMethod;
  /** fastify style, e.g. `/instances/:name/start`; each `:param` is a property of `params`. */
  path: string;
  summary: string;
  params?: TObject;
  query?: TObject;
  body?: TObject;
  /** An empty request body is allowed (it means `{}`). */
  bodyOptional?: boolean;
  /** For an operation: the schema of its result. */
  response: TSchema;
  /** The success status of a plain call (default 200). */
  status?: 200 | 201 | 202;
  /** Long work: answered 202 with an operation whose `result` has the shape of `response`. */
  operation?: true;
  /** The core validates the `:name` parameter itself (naming the field as the CLI does). */
  nameCheckedByCore?: boolean;
  /**
   * The answer is the same for every caller until something changes: the daemon may serve one serialized copy
   * to many clients (a list of 1,000 instances is built once, not once per client).
   */
  shared?: true;
}

/** A resource's endpoints, keyed by the operation's name in the contract (`list`, `start`, ...). */
export type EndpointTable = Record<string, EndpointSpec>;

// `{}` is the right empty input here: an intersection with it changes nothing.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
type Empty = {};
type StaticOf<S> = S extends TSchema ? Static<S> : Empty;

/** What a caller passes: the path parameters, query and body fields in one object. */
export type Input<E extends EndpointSpec> = StaticOf<E['params']> & StaticOf<E['query']> & StaticOf<E['body']>;
export type Output<E extends EndpointSpec> = Static<E['response']>;

/** Declares a table, keeping each entry's literal schema types (for `Input`/`Output`). */
export function endpoints<const T extends EndpointTable>(table: T): T {
  return table;
}

/** Progress of long work as a caller sees it, in this process or through the daemon. */
export interface CallOptions {
  /** A named step (launch phases, snapshot steps), with the time since the work began. */
  onPhase?: (phase: string, detail: string, elapsedMs: number) => void;
  /** Bytes moved so far (pulls, copies); `totalBytes` when known; the work's own estimate of the time left when it has one. */
  onTransfer?: (bytes: number, totalBytes: number | undefined, expectedRemainingSeconds?: number) => void;
  /** Aborting cancels the work (Ctrl-C). */
  signal?: AbortSignal;
}

type Args<E extends EndpointSpec> = Empty extends Input<E> ? [input?: Input<E>, options?: CallOptions] : [input: Input<E>, options?: CallOptions];

/** One operation as every caller sees it: input in, output out, whoever does the work. */
export type Call<E extends EndpointSpec> = (...args: Args<E>) => Promise<Output<E>>;

/** A resource's contract: the operations of its table. */
export type Contract<T extends EndpointTable> = { [K in keyof T]: Call<T[K]> };

/**
 * A value with its object fields in the order its schema declares them. JSON serializers may write fields in
 * another order (fast-json-stringify writes required ones first); printed output must not depend on that.
 */
export function orderBySchema<T>(schema: TSchema, value: T): T {
  return order(schema as SchemaNode, value) as T;
}

interface SchemaNode {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  anyOf?: SchemaNode[];
}

function order(schema: SchemaNode, value: unknown): unknown {
  if (Array.isArray(value)) return schema.items === undefined ? value : value.map((v) => order(schema.items!, v));
  if (value === null || typeof value !== 'object') return value;
  const objectSchema = schema.properties !== undefined ? schema : schema.anyOf?.find((s) => s.properties !== undefined);
  if (objectSchema?.properties === undefined) return value;
  const source = value as Record<string, unknown>;
  const ordered: Record<string, unknown> = {};
  for (const [key, sub] of Object.entries(objectSchema.properties)) if (source[key] !== undefined) ordered[key] = order(sub, source[key]);
  for (const key of Object.keys(source)) if (!(key in ordered) && source[key] !== undefined) ordered[key] = source[key];
  return ordered;
}

/** The names of a table entry's path parameters, in order (`/a/:x/b/:y` → x, y). */
export function pathParams(path: string): string[] {
  return [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
}
