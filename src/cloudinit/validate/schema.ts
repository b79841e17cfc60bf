/**
 * A tiny, typed schema language for cloud-config: each Spec checks a plain JS value (as parsed from YAML 1.1,
 * like PyYAML does for cloud-init) and reports issues against a path. Positions are resolved later from the
 * path, so checks stay pure data → issues.
 */

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

export interface RawIssue {
  severity: 'error' | 'warning';
  path: Path;
  message: string;
  hint?: string;
  /** Point at the mapping key instead of its value (unknown keys). */
  at?: 'key' | 'value';
}

export interface Ctx {
  issues: RawIssue[];
}

/** The coarse kind of a value, as a user would name it. */
export type ValueKind = 'null' | 'boolean' | 'integer' | 'number' | 'string' | 'list' | 'mapping' | 'timestamp' | 'binary' | 'other';

export interface Spec {
  /** "a boolean", "a list of strings": used in "expected X" messages. */
  readonly describe: string;
  /** The kinds this spec can possibly accept; used to pick the closest alternative of a oneOf. */
  readonly kinds: readonly ValueKind[];
  check(value: unknown, path: Path, ctx: Ctx): void;
}

export function kindOf(v: unknown): ValueKind {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'string') return 'string';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Date) return 'timestamp';
  if (v instanceof Uint8Array) return 'binary';
  if (v instanceof Map) return 'mapping';
  if (typeof v === 'object') return 'mapping';
  return 'other';
}

export function isMapping(v: unknown): v is Record<string, unknown> {
  return kindOf(v) === 'mapping' && !(v instanceof Map);
}

/** `string "abc"`, `integer 420`, `list`: what the user actually wrote, short. */
export function showValue(v: unknown): string {
  const kind = kindOf(v);
  switch (kind) {
    case 'string': {
      const s = v as string;
      return `string ${JSON.stringify(s.length > 40 ? `${s.slice(0, 37)}...` : s)}`;
    }
    case 'boolean':
    case 'integer':
    case 'number':
      return `${kind} ${String(v)}`;
    case 'timestamp':
      return 'a date (YAML reads an unquoted date as a timestamp)';
    case 'list':
      return 'a list';
    case 'mapping':
      return 'a mapping';
    case 'null':
      return 'null (empty value)';
    default:
      return kind;
  }
}

export function err(ctx: Ctx, path: Path, message: string, hint?: string, at?: 'key' | 'value'): void {
  ctx.issues.push({ severity: 'error', path, message, ...(hint === undefined ? {} : { hint }), ...(at === undefined ? {} : { at }) });
}

export function warn(ctx: Ctx, path: Path, message: string, hint?: string, at?: 'key' | 'value'): void {
  ctx.issues.push({ severity: 'warning', path, message, ...(hint === undefined ? {} : { hint }), ...(at === undefined ? {} : { at }) });
}

function typeError(ctx: Ctx, path: Path, spec: Spec, value: unknown, hint?: string): void {
  err(ctx, path, `expected ${spec.describe}, got ${showValue(value)}`, hint);
}

/** A hint for the classic YAML traps: unquoted octal modes, yes/no, dates, numbers where strings are wanted. */
function scalarHint(expected: ValueKind, value: unknown): string | undefined {
  const got = kindOf(value);
  if (expected === 'string' && (got === 'integer' || got === 'number' || got === 'boolean' || got === 'timestamp')) {
    return 'quote the value so YAML keeps it as a string';
  }
  if (expected === 'boolean' && got === 'string') return 'write true or false without quotes';
  if (expected === 'integer' && got === 'string') return 'write the number without quotes';
  return undefined;
}

export interface StringOptions {
  enum?: readonly string[];
  pattern?: RegExp;
  /** What the pattern means, for the message ("an octal mode like '0644'"). */
  patternDescribe?: string;
  patternHint?: string;
  nonEmpty?: boolean;
  describe?: string;
}

export function str(options: StringOptions = {}): Spec {
  const describe =
    options.describe ?? (options.enum === undefined ? 'a string' : `one of ${options.enum.map((e) => JSON.stringify(e)).join(', ')}`);
  return {
    describe,
    kinds: ['string'],
    check(value, path, ctx) {
      if (typeof value !== 'string') {
        typeError(ctx, path, this, value, scalarHint('string', value));
        return;
      }
      if (options.enum !== undefined && !options.enum.includes(value)) {
        const near = closest(value, options.enum);
        err(ctx, path, `${JSON.stringify(value)} is not ${describe}`, near === undefined ? undefined : `did you mean ${JSON.stringify(near)}?`);
        return;
      }
      if (options.nonEmpty === true && value.trim() === '') err(ctx, path, 'must not be empty');
      if (options.pattern !== undefined && !options.pattern.test(value)) {
        err(ctx, path, `${JSON.stringify(value)} is not ${options.patternDescribe ?? `matching ${String(options.pattern)}`}`, options.patternHint);
      }
    },
  };
}

export function bool(): Spec {
  return {
    describe: 'a boolean (true or false)',
    kinds: ['boolean'],
    check(value, path, ctx) {
      if (typeof value !== 'boolean') typeError(ctx, path, this, value, scalarHint('boolean', value));
    },
  };
}

export function int(options: { min?: number; max?: number } = {}): Spec {
  const describe = options.min === undefined ? 'an integer' : options.min === 0 ? 'a non-negative integer' : `an integer ≥ ${options.min}`;
  return {
    describe,
    kinds: ['integer'],
    check(value, path, ctx) {
      if (kindOf(value) !== 'integer') {
        typeError(ctx, path, this, value, scalarHint('integer', value));
        return;
      }
      const n = Number(value);
      if (options.min !== undefined && n < options.min) err(ctx, path, `${n} is less than ${options.min}`);
      if (options.max !== undefined && n > options.max) err(ctx, path, `${n} is greater than ${options.max}`);
    },
  };
}

export function nul(): Spec {
  return {
    describe: 'null',
    kinds: ['null'],
    check(value, path, ctx) {
      if (value !== null && value !== undefined) typeError(ctx, path, this, value);
    },
  };
}

/** Exactly one of a few literal values (true, false, "localhost"). */
export function literal(...values: readonly (string | boolean | number | null)[]): Spec {
  const kinds = [...new Set(values.map((v) => kindOf(v)))];
  return {
    describe: values.map((v) => (typeof v === 'string' ? JSON.stringify(v) : String(v))).join(' or '),
    kinds,
    check(value, path, ctx) {
      if (!values.some((v) => v === value || (v === null && value === undefined))) {
        const near = typeof value === 'string' ? closest(value, values.filter((v): v is string => typeof v === 'string')) : undefined;
        err(ctx, path, `expected ${this.describe}, got ${showValue(value)}`, near === undefined ? undefined : `did you mean ${JSON.stringify(near)}?`);
      }
    },
  };
}

export function any(describe = 'any value'): Spec {
  return { describe, kinds: ['null', 'boolean', 'integer', 'number', 'string', 'list', 'mapping', 'timestamp', 'binary', 'other'], check() {} };
}

export interface ArrayOptions {
  minItems?: number;
  maxItems?: number;
  unique?: boolean;
  describe?: string;
}

export function arr(items: Spec | undefined, options: ArrayOptions = {}): Spec {
  const describe = options.describe ?? (items === undefined ? 'a list' : `a list of ${plural(items.describe)}`);
  return {
    describe,
    kinds: ['list'],
    check(value, path, ctx) {
      if (!Array.isArray(value)) {
        typeError(ctx, path, this, value, kindOf(value) === 'string' ? 'write it as a YAML list: one "- item" per line' : undefined);
        return;
      }
      if (options.minItems !== undefined && value.length < options.minItems) {
        err(ctx, path, value.length === 0 ? 'must not be an empty list' : `needs at least ${options.minItems} items, has ${value.length}`);
      }
      if (options.maxItems !== undefined && value.length > options.maxItems) {
        err(ctx, path, `has ${value.length} items, at most ${options.maxItems} allowed`);
      }
      if (options.unique === true) {
        const seen = new Set<string>();
        value.forEach((v, i) => {
          const k = JSON.stringify(v);
          if (seen.has(k)) err(ctx, [...path, i], `duplicate item ${k}`);
          seen.add(k);
        });
      }
      if (items !== undefined) value.forEach((v, i) => items.check(v, [...path, i], ctx));
    },
  };
}

export interface ObjectOptions {
  required?: readonly string[];
  /** Keys matched by a pattern (ssh_keys: rsa_private ...). */
  patterns?: ReadonlyArray<readonly [RegExp, Spec]>;
  /** What to do with keys that are neither listed nor matched: error (cloud-init's additionalProperties: false), warning, or allow. */
  unknown?: 'error' | 'warning' | 'allow';
  /** Keys accepted but deprecated: key → hint. */
  deprecated?: Readonly<Record<string, string>>;
  describe?: string;
  /** Hint for an unknown key with no close match (default: the list of known keys). */
  unknownHint?: string;
  /** Cross-field checks run after the per-key ones, when the value is a mapping. */
  extra?: (obj: Record<string, unknown>, path: Path, ctx: Ctx) => void;
}

export function obj(props: Readonly<Record<string, Spec>>, options: ObjectOptions = {}): Spec {
  const known = Object.keys(props);
  return {
    describe: options.describe ?? 'a mapping',
    kinds: ['mapping'],
    check(value, path, ctx) {
      if (!isMapping(value)) {
        typeError(ctx, path, this, value);
        return;
      }
      for (const key of options.required ?? []) {
        if (!(key in value)) err(ctx, path, `missing required key "${key}"`);
      }
      for (const [key, v] of Object.entries(value)) {
        const spec = props[key] ?? options.patterns?.find(([re]) => re.test(key))?.[1];
        const at = [...path, key];
        if (spec === undefined) {
          const mode = options.unknown ?? 'error';
          if (mode === 'allow') continue;
          const near = closest(key, known);
          const msg = `unknown key "${key}"`;
          const hint =
            near !== undefined ? `did you mean "${near}"?` : (options.unknownHint ?? (known.length > 0 ? `known keys: ${known.join(', ')}` : undefined));
          if (mode === 'error') err(ctx, at, msg, hint, 'key');
          else warn(ctx, at, msg, hint, 'key');
          continue;
        }
        const dep = options.deprecated?.[key];
        if (dep !== undefined) warn(ctx, at, `"${key}" is deprecated`, dep, 'key');
        spec.check(v, at, ctx);
      }
      options.extra?.(value, path, ctx);
    },
  };
}

/**
 * The first alternative that accepts the value wins (its warnings are kept). When none does, the errors of the
 * alternative for the same kind of value are reported (they are the precise ones); otherwise one "expected A or
 * B" error.
 */
export function oneOf(alternatives: readonly Spec[], describe?: string): Spec {
  const kinds = [...new Set(alternatives.flatMap((a) => a.kinds))];
  return {
    describe: describe ?? alternatives.map((a) => a.describe).join(' or '),
    kinds,
    check(value, path, ctx) {
      const tries = alternatives.map((alt) => {
        const sub: Ctx = { issues: [] };
        alt.check(value, path, sub);
        return { alt, issues: sub.issues, errors: sub.issues.filter((i) => i.severity === 'error').length };
      });
      const ok = tries.find((t) => t.errors === 0);
      if (ok !== undefined) {
        ctx.issues.push(...ok.issues);
        return;
      }
      const kind = kindOf(value);
      const sameKind = tries.filter((t) => t.alt.kinds.includes(kind));
      if (sameKind.length > 0) {
        const best = sameKind.reduce((a, b) => (b.errors < a.errors ? b : a));
        ctx.issues.push(...best.issues);
        return;
      }
      err(ctx, path, `expected ${this.describe}, got ${showValue(value)}`, scalarHint(alternatives[0]?.kinds[0] ?? 'other', value));
    },
  };
}

/** Accepted, but with a warning (deprecated forms that cloud-init still honours). */
export function deprecated(spec: Spec, message: string, hint?: string): Spec {
  return refine(spec, (_value, path, ctx) => warn(ctx, path, message, hint));
}

/** Run `spec`, then `more` when the value passed it without errors. */
export function refine(spec: Spec, more: (value: unknown, path: Path, ctx: Ctx) => void): Spec {
  return {
    describe: spec.describe,
    kinds: spec.kinds,
    check(value, path, ctx) {
      const sub: Ctx = { issues: [] };
      spec.check(value, path, sub);
      ctx.issues.push(...sub.issues);
      if (!sub.issues.some((i) => i.severity === 'error')) more(value, path, ctx);
    },
  };
}

function plural(describe: string): string {
  const d = describe.replace(/^an? /, '');
  if (d.startsWith('one of') || d.includes(' or ')) return `items that are ${describe}`;
  if (d.endsWith('s')) return d;
  return `${d}s`;
}

/** Levenshtein distance, small inputs only. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      const left = prev[j - 1] ?? 0;
      prev[j] = Math.min(up + 1, left + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate within edit distance 2 (ties: the first), ignoring case and -/_ differences. */
export function closest(word: string, candidates: readonly string[], maxDistance = 2): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replaceAll('-', '_');
  let best: string | undefined;
  let bestD = maxDistance + 1;
  for (const c of candidates) {
    if (c === word) continue;
    const d = norm(c) === norm(word) ? 0.5 : editDistance(norm(word), norm(c));
    // "ab" is 2 edits away from everything short: only suggest when most of the word survives.
    if (d >= Math.min(word.length, c.length) / 2 && d >= 1) continue;
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}
