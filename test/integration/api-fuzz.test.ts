/**
 * Property-based fuzzing of every route of the API (issue 16, "Faults, tried for real"): requests generated from
 * each route's own schemas (the contracts' and the other routes'), well-shaped and hostile, through inject() on
 * both kinds of listener (the UNIX socket without a token, TCP with one), over a core on a private state directory.
 *
 *   I  every route: requests surely refused before any handler (schema, name rule, token, origin, body type) —
 *      each answered 4xx, and the state (database rows, state directory, every list) unchanged after them all;
 *   V  GETs on every target, other methods on names that do not exist, a few cheap creating routes: well-formed
 *      and hostile requests — no 5xx, state unchanged;
 *   C  the other creating routes: well-formed bodies with hostile values — a refused request changes nothing
 *      (checked after each), long work refuses bad input before its operation starts.
 *
 * Always: never a 5xx; every error in the error shape, with no stack trace, source path or secret; the daemon's
 * log (every line the app and the core wrote) with no stack trace and no secret (the daemon's token, login codes,
 * tickets, user-data, network-config, password hashes the fuzzer sent, each marked).
 *
 * FUZZ_SEED=N reproduces a run (the seed is printed); FUZZ_SCALE=2 doubles the number of requests.
 */
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Ajv, type ValidateFunction } from 'ajv';
import fc from 'fast-check';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API } from '../../src/api/contracts/index.ts';
import { pathParams } from '../../src/api/endpoint.ts';
import { NAME_PATTERN } from '../../src/api/schemas.ts';
import { buildApp, DEFAULT_BODY_LIMIT } from '../../src/daemon/app.ts';
import { createCore, type DaemonCore } from '../../src/daemon/core.ts';
import { DAEMON_PLUGINS } from '../../src/daemon/plugins.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { REPO_ROOT, tempHome } from '../helpers/cli.ts';
import { hostileString, hostileValue, isNameSchema, isValidName, type JsonSchema, valueOf } from '../helpers/schema-arbitrary.ts';

const SEED = Number(process.env['FUZZ_SEED'] ?? 20_261_205);
const SCALE = Number(process.env['FUZZ_SCALE'] ?? 1);
/** Per route: requests the schemas refuse (phase I), and well-shaped or hostile ones on safe targets (phase V). */
const RUNS_INVALID = Math.round(100 * SCALE);
const RUNS_VALID = Math.round(70 * SCALE);

/**
 * Registered routes that are not JSON API calls, so not fuzzed here (each must match a registered route, so the
 * list cannot go stale): WebSocket upgrades, the web UI's pages and files, the Swagger UI's pages.
 */
const NOT_JSON_API: ReadonlyArray<{ route: string; why: string }> = [
  { route: 'GET /events', why: 'WebSocket upgrade (test/integration/web-consoles.test.ts, daemon.test.ts)' },
  { route: 'GET /instances/:name/console/:kind', why: 'WebSocket upgrade (web-consoles.test.ts)' },
  { route: 'GET /', why: 'redirect to the web UI' },
  { route: 'GET /ui', why: 'redirect to the web UI' },
  { route: 'GET /ui/*', why: 'web UI files (HTML, scripts)' },
  { route: 'GET /docs/', why: 'Swagger UI page' },
  { route: 'GET /docs/static/*', why: 'Swagger UI files' },
  { route: 'GET /docs/static/index.html', why: 'Swagger UI page' },
  { route: 'GET /docs/static/swagger-initializer.js', why: 'Swagger UI script' },
  { route: 'GET /docs/json', why: 'the OpenAPI document again, for the Swagger UI (GET /openapi.json is fuzzed)' },
  { route: 'GET /docs/yaml', why: 'the OpenAPI document as YAML, for the Swagger UI' },
];

/**
 * Routes without path parameters whose well-formed requests do real work (make instances, bridges, pools,
 * volumes, download or build images): they get only requests their schemas refuse. A route not listed in
 * CHEAP_WHEN_VALID is treated this way, so a new endpoint is safe by default.
 */
const CHEAP_WHEN_VALID = new Set(['POST /events/tickets', 'POST /ui-logins', 'POST /ui-logins/redeem', 'POST /templates', 'POST /instances/launch']);

/**
 * Routes without path parameters whose well-formed requests do work too real for a test run: phase C (well-formed
 * bodies with hostile values) leaves them out; phase I still sends them requests their schemas refuse.
 */
const REAL_WORK: Record<string, string> = {
  'POST /networks': 'makes a bridge, an nftables table and a dnsmasq on the host',
  'POST /images/pull': 'downloads',
  'POST /images/build': 'runs debootstrap',
};
/** Phase C: well-formed fields that would start a guest (now or later) or reserve real disk space. */
const SAFE_VALUES: Record<string, unknown> = { start: false, preallocate: false, autostart: false, restartPolicy: 'no' };
const RUNS_CREATE = Math.round(40 * SCALE);

/** Query fields that make the daemon wait (long polls, followed logs): kept short in well-formed requests. */
const NO_WAIT: Record<string, unknown> = { follow: false, wait: 0, timeout: 0 };

/** Fields whose values are secrets: `log` ones must never reach the log, `all` ones no answer either. */
const SECRET_FIELDS: Record<string, 'log' | 'all'> = { userData: 'log', networkConfig: 'log', passwordHash: 'log', code: 'all', ticket: 'all' };
const MARK = { log: 'fzsecretlog', all: 'fzsecretall' };

/** What must never appear in an answer or a log line: a stack frame or a path of the source tree. */
const LEAKS = [/ {4}at /, /node:internal/, new RegExp(`${REPO_ROOT.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(src|node_modules)`), /\bat [\w.<>]+ \(\/.*:\d+:\d+\)/];

const SEEDED = { instance: 'fz-seed-instance-7', volume: 'fz-seed-volume-7' };

interface Route {
  key: string;
  method: string;
  url: string;
  params: string[];
  /** Reached without a token (a login, a WebSocket that asks for a ticket instead). */
  public: boolean;
  schemas: { params?: JsonSchema | undefined; query?: JsonSchema | undefined; body?: JsonSchema | undefined };
}

interface FuzzRequest {
  via: 'socket' | 'tcp';
  method: string;
  path: string;
  /** The path parameters as the server decodes them (undefined: the raw URL may route elsewhere). */
  decodedParams: Record<string, string> | undefined;
  query: Array<[string, string]>;
  rawQuery?: string;
  headers: Record<string, string>;
  /** A JSON value (sent as JSON), or raw bytes with `contentType`. */
  body?: { json: unknown } | { raw: string | Buffer; contentType: string };
  /** Why the schemas (or the auth check) refuse it, when they surely do. */
  refusedBecause?: string;
}

describe('API fuzzing: every route, from its schemas', () => {
  const { home, cleanup } = tempHome('virtnode-fuzz-');
  const logLines: string[] = [];
  let core: DaemonCore;
  let socketApp: FastifyInstance;
  let tcpApp: FastifyInstance;
  let token: string;
  const registered: RouteOptions[] = [];
  const sentSecrets = new Set<string>();
  let requests = 0;
  const statuses = new Map<number, number>();
  let secretCounter = 0;

  beforeAll(async () => {
    process.env['VIRTNODE_HOME'] = home;
    const stream = new Writable({
      write(chunk, _encoding, done) {
        logLines.push(...String(chunk).split('\n').filter((l) => l !== ''));
        done();
      },
    });
    const log = pino({ level: 'debug' }, stream);
    core = createCore(statePaths(home), log);
    socketApp = await buildApp(core, { auth: 'none', logger: log, plugins: DAEMON_PLUGINS, onRoute: (r) => registered.push(r) });
    tcpApp = await buildApp(core, { auth: 'token', logger: log, plugins: DAEMON_PLUGINS });
    await socketApp.ready();
    await tcpApp.ready();
    token = core.tokens.create('fuzz-admin').token;
    // Something to aim at: hostile requests on existing resources reach deeper checks than on missing ones.
    const made = await socketApp.inject({ method: 'POST', url: '/instances', payload: { name: SEEDED.instance, diskSize: '1M' } });
    expect(made.statusCode, made.body).toBe(201);
    const vol = await socketApp.inject({ method: 'POST', url: '/volumes', payload: { name: SEEDED.volume, size: '1M' } });
    expect(vol.statusCode, vol.body).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await core?.supervisor.stop();
    await core?.operations.shutdown();
    await socketApp?.close();
    await tcpApp?.close();
    core?.db.close();
    cleanup();
  });

  const routes = (): Route[] => {
    const out: Route[] = [];
    for (const r of registered) {
      for (const method of [r.method].flat()) {
        if (method === 'HEAD') continue;
        const schema = (r.schema ?? {}) as { params?: JsonSchema; querystring?: JsonSchema; body?: JsonSchema };
        out.push({
          key: `${method} ${r.url}`,
          method,
          url: r.url,
          params: pathParams(r.url),
          public: r.config?.public === true,
          schemas: { params: schema.params, query: schema.querystring, body: schema.body },
        });
      }
    }
    return out;
  };

  it('covers every registered route but the listed non-JSON ones, and every endpoint of the contracts', () => {
    const all = routes().map((r) => r.key);
    const excluded = new Set(NOT_JSON_API.map((e) => e.route));
    if (!NOT_JSON_API.every((e) => all.includes(e.route))) console.log(all.join('\n'));
    for (const e of excluded) expect(all, `the exclusion ${e} names a registered route`).toContain(e);
    const fuzzed = all.filter((k) => !excluded.has(k));
    expect(fuzzed.length + excluded.size).toBe(all.length);
    for (const table of Object.values(API)) {
      for (const spec of Object.values(table)) expect(fuzzed, 'every contract endpoint is fuzzed').toContain(`${spec.method} ${spec.path}`);
    }
    if (fuzzed.length + excluded.size !== all.length || excluded.size === 0) console.log(all.join('\n'));
    console.log(`fuzz: ${all.length} registered routes, ${fuzzed.length} fuzzed, ${excluded.size} excluded (not JSON API)`);
  });

  // --- validators, as the app configures them: bodies strict, query strings and parameters coerced -------------
  const strict = new Ajv({ coerceTypes: false, useDefaults: true, strict: false });
  const coercing = new Ajv({ coerceTypes: true, useDefaults: true, strict: false });
  const validators = new WeakMap<object, ValidateFunction>();
  const valid = (ajv: Ajv, schema: JsonSchema, value: unknown): boolean => {
    let v = validators.get(schema);
    if (v === undefined) {
      v = ajv.compile(schema);
      validators.set(schema, v);
    }
    return v(value === undefined ? undefined : JSON.parse(JSON.stringify(value)));
  };

  /** Why the app surely refuses the request before any handler runs, or undefined when it may be valid. */
  const refusal = (route: Route, req: Omit<FuzzRequest, 'refusedBecause'>): string | undefined => {
    if (req.headers['origin'] !== undefined) return 'foreign origin'; // refused before routing
    if (req.decodedParams === undefined) return undefined;
    if (req.via === 'tcp' && !route.public && req.headers['authorization'] !== `Bearer ${token}`) return 'no valid token';
    if (req.body !== undefined && 'raw' in req.body) {
      if (!req.body.contentType.startsWith('application/json')) return 'body is not declared JSON';
      try {
        JSON.parse(String(req.body.raw).replace(/^\ufeff/, '')); // fastify's parser skips a byte-order mark
      } catch {
        return 'body is not JSON';
      }
      return undefined; // JSON under another charset or subtype: whether it is parsed is fastify's business
    }
    if (route.schemas.body !== undefined && req.body !== undefined && !valid(strict, route.schemas.body, req.body.json)) return 'body';
    if (route.schemas.body !== undefined && req.body === undefined && !valid(strict, route.schemas.body, null)) return 'no body';
    if (route.schemas.query !== undefined && req.rawQuery === undefined) {
      const parsed = Object.create(null) as Record<string, string | string[]>;
      for (const [k, v] of req.query) {
        const prev = parsed[k];
        parsed[k] = prev === undefined ? v : [prev, v].flat();
      }
      if (!valid(coercing, route.schemas.query, parsed)) return 'query';
    }
    if (route.schemas.params !== undefined && !valid(coercing, route.schemas.params, req.decodedParams)) return 'params';
    for (const name of route.params) {
      const schema = route.schemas.params?.properties?.[name];
      if ((name === 'name' || isNameSchema(schema)) && !isValidName(req.decodedParams[name])) return `param ${name}`;
    }
    return undefined;
  };

  const markSecrets = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(markSecrets);
    if (value === null || typeof value !== 'object') return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const kind = SECRET_FIELDS[k];
      if (kind !== undefined && typeof v === 'string') {
        const mark = `${MARK[kind]}${(secretCounter++).toString(36)}q`;
        sentSecrets.add(mark);
        out[k] = kind === 'all' ? mark + v.slice(0, 40) : `${v}\n${mark}`;
      } else out[k] = markSecrets(v);
    }
    return out;
  };

  const asQueryText = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? 'undefined');

  /**
   * The request generator of a route. Phase I: only requests surely refused before any handler runs; V: anything.
   * `useSeeded`: path parameters name the seeded resources too (phase I, and GETs: nothing can change them).
   */
  const requestArb = (route: Route, phase: 'I' | 'V', useSeeded: boolean): fc.Arbitrary<FuzzRequest> => {
    const paramArbs: Record<string, fc.Arbitrary<string>> = {};
    for (const p of route.params) {
      const schema = route.schemas.params?.properties?.[p] ?? { type: 'string', pattern: NAME_PATTERN };
      const seeded =
        p === 'instance' || p === 'source' || (p === 'name' && route.url.startsWith('/instances/'))
          ? SEEDED.instance
          : p === 'volume' || (p === 'name' && route.url.startsWith('/volumes/'))
            ? SEEDED.volume
            : undefined;
      const wellFormed = valueOf(schema).map(String);
      paramArbs[p] = useSeeded && seeded !== undefined ? fc.oneof({ weight: 3, arbitrary: fc.constant(seeded) }, { weight: 1, arbitrary: wellFormed }) : wellFormed;
    }
    const hostileParam = route.params.length === 0 ? fc.constant(undefined) : fc.option(fc.tuple(fc.constantFrom(...route.params), hostileString), { freq: 2 });
    const encoding = phase === 'I' ? fc.constant('component' as const) : fc.constantFrom('component' as const, 'raw' as const, 'double' as const);

    const querySchema = route.schemas.query;
    const queryArb: fc.Arbitrary<{ pairs: Array<[string, string]>; raw?: string }> = fc.oneof(
      { weight: 4, arbitrary: (querySchema === undefined ? fc.constant({}) : valueOf(querySchema)).map((q) => ({ pairs: Object.entries(q as object).map(([k, v]) => [k, asQueryText(phase === 'V' && k in NO_WAIT ? NO_WAIT[k] : v)] as [string, string]) })) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom('x', 'force', 'limit', 'wait', 'status', 'pool', ...(phase === 'I' ? ['follow'] : []), 'refresh', 'cpuinfo', 'ticket', '__proto__', 'constructor'), hostileValue).map(([k, v]) => ({ pairs: [[k, asQueryText(v)]] as Array<[string, string]> })) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom('force', 'limit', 'status', 'wait'), hostileValue, hostileValue).map(([k, a, b]) => ({ pairs: [[k, asQueryText(a)], [k, asQueryText(b)]] as Array<[string, string]> })) },
      { weight: phase === 'V' ? 1 : 0, arbitrary: fc.constantFrom('%', '%zz', '&&&', '=', 'a[b]=1', 'a=%00', '%E0%A4%A', 'force=true&force', '?'.repeat(10)).map((raw) => ({ pairs: [], raw })) },
    );

    const bodySchema = route.schemas.body;
    const bodies = bodySchema === undefined ? undefined : valueOf(bodySchema);
    const withBody = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(route.method);
    type Body = FuzzRequest['body'];
    const bodyArb: fc.Arbitrary<Body> = !withBody
      ? fc.constant(undefined)
      : fc.oneof(
          { weight: bodies === undefined ? 5 : 25, arbitrary: (bodies ?? fc.constant(undefined)).map((b) => (b === undefined || b === null ? undefined : { json: b })) },
          // a field of the wrong type or a hostile value
          {
            weight: bodies === undefined ? 0 : 25,
            arbitrary: fc.tuple(bodies ?? fc.constant({}), fc.constantFrom(...Object.keys(bodySchema?.properties ?? bodySchema?.anyOf?.[0]?.properties ?? { x: 0 })), hostileValue).map(([b, k, v]) => ({ json: { ...(b as object), [k]: v } })),
          },
          // an unknown field
          {
            weight: 10,
            arbitrary: fc
              .tuple(bodies ?? fc.constant({}), fc.constantFrom('color', 'extra', '__proto__', 'constructor', 'prototype', ''), hostileValue)
              .map(([b, k, v]) => ({ json: { ...(b ?? {}), ...(JSON.parse(`{${JSON.stringify(k)}: ${JSON.stringify(v) ?? 'null'}}`) as object) } })),
          },
          // a required field missing
          { weight: bodies === undefined ? 0 : 10, arbitrary: (bodies ?? fc.constant({})).map((b) => { const copy = { ...(b as Record<string, unknown>) }; delete copy[(bodySchema?.required ?? [])[0] ?? '']; return { json: copy }; }) },
          // not an object
          { weight: 10, arbitrary: fc.oneof(fc.constant([]), fc.integer(), fc.string(), fc.boolean(), fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 })).map((json) => ({ json })) },
          // not JSON, or not declared as JSON
          {
            weight: 10,
            arbitrary: fc.oneof(
              fc.constantFrom('{', '{"name": ', '{"a":}', "{'a': 1}", '[1,', 'NaN', '{"a": 1,}', '\u0000', '\ufeff{}', '{"a": "\\u00"}', '{"a": 1e99999}', '{"a": {"b": {"c": [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}}}', '{"__proto__": {"polluted": 1}}x').map((raw) => ({ raw, contentType: 'application/json' })),
              fc.tuple(fc.constantFrom('text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', 'application/json-patch+json', 'image/png', ''), fc.constantFrom('{}', 'a=1', '<a/>', '--x--')).map(([contentType, raw]) => ({ raw, contentType })),
            ),
          },
          // larger than the body limit
          { weight: 1, arbitrary: fc.constant({ raw: `{"name": "${'a'.repeat(DEFAULT_BODY_LIMIT + 10)}"}`, contentType: 'application/json' }) },
        );

    const headerArb: fc.Arbitrary<Record<string, string>> = fc.oneof(
      { weight: 12, arbitrary: fc.constant({}) },
      { weight: 1, arbitrary: fc.constantFrom('https://evil.example', 'null', 'http://localhost:1', 'file://').map((origin) => ({ origin })) },
    );
    const authArb: fc.Arbitrary<string | undefined> = fc.oneof(
      { weight: 12, arbitrary: fc.constant(`Bearer ${token}`) },
      { weight: 1, arbitrary: fc.constant(undefined) },
      // FAKE: a made-up token (marked as a secret)
      { weight: 2, arbitrary: fc.constantFrom('Bearer ', 'Basic YTpi', `Bearer ${token}x`, `bearer ${token}`, `Bearer  ${token}`, 'FAKE') },
    );

    const arb = fc
      .record({
        via: fc.constantFrom('socket' as const, 'tcp' as const),
        params: fc.record(paramArbs),
        hostileParam,
        encoding,
        query: queryArb,
        body: bodyArb,
        headers: headerArb,
        auth: authArb,
      })
      .map(({ via, params, hostileParam, encoding, query, body, headers, auth }): FuzzRequest => {
        const values: Record<string, string> = { ...params };
        if (hostileParam !== undefined && hostileParam !== null) values[hostileParam[0]] = hostileParam[1];
        let encodable = true;
        const encode = (v: string) => {
          try {
            return encoding === 'raw' ? v : encoding === 'double' ? encodeURIComponent(encodeURIComponent(v)) : encodeURIComponent(v);
          } catch {
            encodable = false; // a lone surrogate: sent as it is
            return v;
          }
        };
        let path = route.url;
        for (const p of route.params) path = path.replace(`:${p}`, encode(values[p]!));
        // A dot segment or a raw separator routes elsewhere: the server's parameters are then unknown here.
        let routesAsWritten = encoding !== 'raw' && encodable;
        try {
          routesAsWritten &&= new URL(path, 'http://h').pathname === path && !route.params.some((p) => values[p] === '');
        } catch {
          routesAsWritten = false;
        }
        const decodedParams = routesAsWritten ? Object.fromEntries(route.params.map((p) => [p, encoding === 'double' ? encodeURIComponent(values[p]!) : values[p]!])) : undefined;
        const allHeaders: Record<string, string> = { ...headers };
        if (via === 'tcp' && auth !== undefined) {
          allHeaders['authorization'] = auth === 'FAKE' ? `Bearer ${MARK.all}${(secretCounter++).toString(36)}q` : auth;
          if (allHeaders['authorization'].includes(MARK.all)) sentSecrets.add(allHeaders['authorization'].slice(7));
        }
        const markedBody = body !== undefined && 'json' in body ? { json: markSecrets(body.json) } : body;
        const markedQuery = query.pairs.map(([k, v]) => [k, SECRET_FIELDS[k] === undefined ? v : (markSecrets({ [k]: v }) as Record<string, string>)[k]!] as [string, string]);
        const req = { via, method: route.method, path, decodedParams, query: markedQuery, ...(query.raw === undefined ? {} : { rawQuery: query.raw }), headers: allHeaders, ...(markedBody === undefined ? {} : { body: markedBody }) };
        const why = refusal(route, req);
        return { ...req, ...(why === undefined ? {} : { refusedBecause: why }) };
      });
    return phase === 'I' ? arb.filter((r) => r.refusedBecause !== undefined) : arb;
  };

  const send = async (req: FuzzRequest) => {
    requests++;
    const qs = req.rawQuery ?? new URLSearchParams(req.query).toString();
    const url = qs === '' ? req.path : `${req.path}?${qs}`;
    const headers: Record<string, string> = { ...req.headers };
    let payload: string | Buffer | undefined;
    if (req.body !== undefined) {
      if ('json' in req.body) {
        payload = JSON.stringify(req.body.json) ?? 'null';
        headers['content-type'] = 'application/json';
      } else {
        payload = req.body.raw;
        if (req.body.contentType !== '') headers['content-type'] = req.body.contentType;
      }
    }
    const app = req.via === 'socket' ? socketApp : tcpApp;
    return app.inject({ method: req.method as 'GET', url, headers, ...(payload === undefined ? {} : { payload }) });
  };

  const check = (req: FuzzRequest, phase: 'I' | 'V', status: number, text: string, contentType: string): void => {
    const what = `${req.method} ${req.path} via ${req.via} -> ${status}: ${text.slice(0, 300)}`;
    if (status >= 500) throw new Error(`5xx: ${what}`);
    if (phase === 'I' && status < 400) throw new Error(`refused by its schema (${req.refusedBecause}) yet answered ${what}`);
    if (status >= 400) {
      if (!contentType.startsWith('application/json')) throw new Error(`an error that is not JSON: ${what}`);
      const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
      if (typeof body.error?.code !== 'string' || typeof body.error.message !== 'string') throw new Error(`no error shape: ${what}`);
    }
    for (const leak of LEAKS) if (leak.test(text)) throw new Error(`stack trace or source path in the answer: ${what}`);
    if (text.includes(token) || text.includes(MARK.all)) throw new Error(`a secret in the answer: ${what}`);
  };

  const checkLog = (from: number): string[] => {
    const problems: string[] = [];
    for (const line of logLines.slice(from)) {
      if (line.includes(token) || line.includes(MARK.all) || line.includes(MARK.log)) problems.push(`a secret in the log: ${line.slice(0, 400)}`);
      for (const leak of LEAKS) if (leak.test(line)) problems.push(`a stack trace in the log: ${line.slice(0, 600)}`);
    }
    return problems;
  };

  // --- the state a refused request must not change -------------------------------------------------------
  const listing = (dir: string, prefix = ''): string[] =>
    readdirSync(dir).flatMap((entry) => {
      const rel = `${prefix}${entry}`;
      if (/^virtnode\.db(-wal|-shm)?$/.test(rel)) return []; // compared by its rows
      const st = lstatSync(join(dir, entry));
      return st.isDirectory() ? [`${rel}/`, ...listing(join(dir, entry), `${rel}/`)] : [`${rel} ${st.size}`];
    });
  /** `lists: false`: rows and files only (each list runs qemu-img per disk: too slow to take after every request). */
  const stateOf = async ({ lists: withLists = true } = {}) => {
    const tables = (core.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((t) => t.name);
    const rows: Record<string, string[]> = {};
    for (const t of tables) {
      const all = core.db.prepare(`SELECT * FROM "${t}"`).all() as Array<Record<string, unknown>>;
      // The fuzzer's own token is used by every TCP request: when it was last used is no state a request changes.
      rows[t] = all.map((r) => JSON.stringify(t === 'api_tokens' ? { ...r, last_used_at: undefined } : r)).sort();
    }
    const lists: Record<string, unknown> = {};
    for (const table of withLists ? Object.values(API) : []) {
      for (const spec of Object.values(table)) {
        if (spec.method !== 'GET' || spec.params !== undefined || spec.response.type !== 'array') continue;
        const r = await socketApp.inject({ method: 'GET', url: spec.path });
        // A pool's capacity and free space are the host filesystem's, which others use meanwhile.
        const body = r.statusCode === 200 ? (r.json() as unknown[]) : r.body;
        lists[spec.path] = Array.isArray(body) ? body.map((item) => (spec.path === '/pools' ? { ...(item as object), capacity: 0, allocation: 0, available: 0 } : item)) : body;
      }
    }
    return { rows, files: listing(home).sort(), lists };
  };

  const fuzzAll = async (phase: 'I' | 'V'): Promise<{ failures: string[]; count: number }> => {
    const failures: string[] = [];
    const excluded = new Set(NOT_JSON_API.map((e) => e.route));
    const start = requests;
    for (const [i, route] of routes().entries()) {
      if (excluded.has(route.key)) continue;
      // Phase V on a route whose well-formed requests do real work would do that work: only phase I reaches it.
      if (phase === 'V' && route.method !== 'GET' && route.params.length === 0 && !CHEAP_WHEN_VALID.has(route.key)) continue;
      const logFrom = logLines.length;
      try {
        await fc.assert(
          fc.asyncProperty(requestArb(route, phase, phase === 'I' || route.method === 'GET'), async (req) => {
            const r = await send(req);
            statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
            check(req, phase, r.statusCode, r.body, String(r.headers['content-type'] ?? ''));
          }),
          { seed: SEED + i + (phase === 'V' ? 10_000 : 0), numRuns: phase === 'I' ? RUNS_INVALID : RUNS_VALID },
        );
      } catch (e) {
        const cause = (e as Error).cause;
        const message = `${(e as Error).message}${cause instanceof Error ? `\nGot: ${cause.message}` : ''}`.replace(/(.)\1{60,}/g, (run, c: string) => `${c}×${run.length}`);
        failures.push(`${phase} ${route.key}: ${message.length > 2400 ? `${message.slice(0, 600)} […] ${message.slice(-1800)}` : message}`);
      }
      failures.push(...checkLog(logFrom).slice(0, 3).map((p) => `${phase} ${route.key}: ${p}`));
    }
    return { failures, count: requests - start };
  };

  it('requests refused by their schemas: every answer a 4xx with the error shape, nothing changed, nothing leaked', async () => {
    console.log(`fuzz: seed ${SEED} (FUZZ_SEED=${SEED} reproduces this run)`);
    const started = performance.now();
    const before = await stateOf();
    const { failures, count } = await fuzzAll('I');
    const after = await stateOf();
    console.log(`fuzz: phase I ${count} refused requests in ${Math.round((performance.now() - started) / 1000)} s`);
    expect(failures).toEqual([]);
    expect(after).toEqual(before);
  }, 600_000);

  it('well-formed and hostile requests (GETs on every target, other methods on names that do not exist): no 5xx, errors in shape, nothing changed, nothing leaked', async () => {
    const started = performance.now();
    const before = await stateOf();
    const { failures, count } = await fuzzAll('V');
    const after = await stateOf();
    console.log(`fuzz: phase V ${count} requests in ${Math.round((performance.now() - started) / 1000)} s; ${requests} requests in all`);
    expect(failures).toEqual([]);
    expect(after).toEqual(before);
  }, 600_000);

  it('creating routes, with well-formed bodies carrying hostile values: a refused request changes nothing, long work refuses bad input before it starts', async () => {
    const started = performance.now();
    const start = requests;
    const failures: string[] = [];
    const opFailures = new Set(['INVALID', 'NOT_FOUND']);
    let baseline: Awaited<ReturnType<typeof stateOf>>;
    for (const [i, route] of routes().entries()) {
      if (route.method === 'GET' || route.params.length > 0 || CHEAP_WHEN_VALID.has(route.key) || route.key in REAL_WORK || route.schemas.body === undefined) continue;
      const logFrom = logLines.length;
      baseline = await stateOf({ lists: false });
      const body = route.schemas.body;
      const freeStrings = Object.entries(body.properties ?? {})
        .filter(([, p]) => p.type === 'string' && p.enum === undefined && p.pattern === undefined && !isNameSchema(p))
        .map(([k]) => k);
      const arb = fc.record({
        via: fc.constantFrom('socket' as const, 'tcp' as const),
        body: valueOf(body),
        hostile: freeStrings.length === 0 ? fc.constant(undefined) : fc.option(fc.tuple(fc.constantFrom(...freeStrings), hostileString), { freq: 4 }),
      });
      try {
        await fc.assert(
          fc.asyncProperty(arb, async ({ via, body: generated, hostile }) => {
            const json: Record<string, unknown> = { ...(generated as object), ...SAFE_VALUES };
            for (const k of Object.keys(SAFE_VALUES)) if (!(k in (body.properties ?? {}))) delete json[k];
            if (hostile !== undefined && hostile !== null) json[hostile[0]] = hostile[1];
            const req: FuzzRequest = { via, method: route.method, path: route.url, decodedParams: {}, query: [], headers: via === 'tcp' ? { authorization: `Bearer ${token}` } : {}, body: { json: markSecrets(json) } };
            const r = await send(req);
            statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
            check(req, 'V', r.statusCode, r.body, String(r.headers['content-type'] ?? ''));
            if (r.statusCode >= 400) {
              const now = await stateOf({ lists: false });
              expect(now, `refused (${r.statusCode} ${r.body.slice(0, 200)}) yet changed the state: ${JSON.stringify(req.body).slice(0, 300)}`).toEqual(baseline);
              return;
            }
            if (r.statusCode === 202) {
              const op = await socketApp.inject({ method: 'GET', url: `/operations/${(r.json() as { id: string }).id}?wait=60` });
              const { status, error } = op.json() as { status: string; error?: { code: string; message: string } };
              baseline = await stateOf({ lists: false }); // the operation is recorded whatever came of it
              if (status === 'failed' && error !== undefined && opFailures.has(error.code)) {
                throw new Error(`accepted (202), then failed on its own input (${error.code}: ${error.message}): bad input must be refused before the work starts; ${JSON.stringify(req.body).slice(0, 300)}`);
              }
            }
            baseline = await stateOf({ lists: false }); // a request that was valid did its work
          }),
          { seed: SEED + i + 20_000, numRuns: RUNS_CREATE },
        );
      } catch (e) {
        const cause = (e as Error).cause;
        failures.push(`C ${route.key}: ${(e as Error).message.slice(0, 1500)}${cause instanceof Error ? `\nGot: ${cause.message.slice(0, 1500)}` : ''}`);
      }
      failures.push(...checkLog(logFrom).slice(0, 3).map((p) => `C ${route.key}: ${p}`));
    }
    console.log(`fuzz: phase C ${requests - start} requests in ${Math.round((performance.now() - started) / 1000)} s`);
    expect(failures).toEqual([]);
  }, 600_000);

  it('sent at least 10,000 requests, and the log and secret checks saw something', () => {
    console.log(`fuzz: answers by status ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}; ${logLines.length} log lines, ${sentSecrets.size} secrets sent`);
    expect(requests).toBeGreaterThanOrEqual(10_000 * SCALE);
    // The log and secret checks looked at something.
    expect(logLines.length).toBeGreaterThan(requests);
    expect(sentSecrets.size).toBeGreaterThan(100 * SCALE);
  });
});
