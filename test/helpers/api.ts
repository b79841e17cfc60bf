import { Ajv, type ValidateFunction } from 'ajv';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp, type AppOptions } from '../../src/daemon/app.ts';
import { createCore, type DaemonCore } from '../../src/daemon/core.ts';
import { statePaths } from '../../src/lib/paths.ts';

export interface ApiResult<T = any> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | number | undefined>;
}

interface OpenApiOperation {
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}
type OpenApiDoc = { paths: Record<string, Record<string, OpenApiOperation>> };

/**
 * The API in-process for inject() tests: a core on a private state directory and the app built over it.
 * Every response goes through `call`, which checks it against the served OpenAPI document (the response schema
 * for its route, method and status) and records which routes were exercised.
 */
export class ApiHarness {
  readonly app: FastifyInstance;
  readonly core: DaemonCore;
  readonly exercised = new Set<string>();
  private lastRoute: string | undefined;
  private doc: OpenApiDoc | undefined;
  private readonly ajv = new Ajv({ strict: false, allErrors: true });
  private readonly validators = new Map<string, ValidateFunction>();

  private constructor(app: FastifyInstance, core: DaemonCore) {
    this.app = app;
    this.core = core;
    app.addHook('onResponse', async (request) => {
      this.lastRoute = request.routeOptions.url === undefined ? undefined : `${request.method} ${request.routeOptions.url}`;
    });
  }

  static async create(home: string, options: Partial<AppOptions> = {}): Promise<ApiHarness> {
    process.env['VIRTNODE_HOME'] = home;
    const core = createCore(statePaths(home), pino({ level: 'silent' }));
    const app = await buildApp(core, { auth: 'none', logger: false, ...options });
    const harness = new ApiHarness(app, core);
    await app.ready();
    return harness;
  }

  openapi(): OpenApiDoc {
    this.doc ??= this.app.swagger() as unknown as OpenApiDoc;
    return this.doc;
  }

  async call<T = any>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResult<T>> {
    this.lastRoute = undefined;
    const response = await this.app.inject({
      method: method as 'GET',
      url,
      headers,
      ...(body === undefined ? {} : typeof body === 'string' || Buffer.isBuffer(body) ? { payload: body, headers: { 'content-type': 'application/json', ...headers } } : { payload: body as object }),
    });
    const text = response.body;
    const isJson = String(response.headers['content-type'] ?? '').startsWith('application/json');
    const parsed = isJson && text !== '' ? JSON.parse(text) : text;
    const result = { status: response.statusCode, body: parsed as T, headers: response.headers };
    this.check(method, result);
    return result;
  }

  /** The response matches the OpenAPI document's schema for its route and status; errors have the one shape. */
  private check(method: string, result: ApiResult): void {
    if (result.status >= 400 && (typeof result.body !== 'object' || result.body === null || typeof result.body.error?.code !== 'string' || typeof result.body.error?.message !== 'string')) {
      throw new Error(`${method} answered ${result.status} without the error shape: ${JSON.stringify(result.body)}`);
    }
    if (this.lastRoute === undefined) {
      if (result.status === 404) return; // no route: answered by the not-found handler, checked above
      throw new Error(`no route recorded for a ${result.status} answer`);
    }
    this.exercised.add(this.lastRoute);
    const [, path] = this.lastRoute.split(' ') as [string, string];
    const openapiPath = path.replace(/:(\w+)/g, '{$1}');
    const operation = this.openapi().paths[openapiPath]?.[method.toLowerCase()];
    if (operation === undefined) throw new Error(`${method} ${openapiPath} is not in the OpenAPI document`);
    const key = String(result.status);
    const response = operation.responses?.[key] ?? operation.responses?.[`${key[0]}XX`];
    if (response === undefined) throw new Error(`${method} ${openapiPath}: status ${key} is not documented`);
    const content = response.content ?? {};
    const media = Object.keys(content)[0];
    if (media === undefined) throw new Error(`${method} ${openapiPath} ${key}: no response schema`);
    if (media !== 'application/json') return;
    const id = `${method} ${openapiPath} ${key}`;
    let validate = this.validators.get(id);
    if (validate === undefined) {
      validate = this.ajv.compile(content[media]!.schema as object);
      this.validators.set(id, validate);
    }
    if (!validate(result.body)) {
      throw new Error(`${id}: the response does not match the OpenAPI document: ${this.ajv.errorsText(validate.errors)}\n${JSON.stringify(result.body).slice(0, 1000)}`);
    }
  }

  async close(): Promise<void> {
    await this.core.supervisor.stop();
    await this.core.operations.shutdown();
    await this.app.close();
    this.core.db.close();
  }
}
