import fc from 'fast-check';
import { NAME_PATTERN } from '../../src/api/schemas.ts';

/** The parts of a JSON Schema (as typebox writes them) that the API's request schemas use. */
export interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  minProperties?: number;
  description?: string;
}

const NAME = new RegExp(NAME_PATTERN);
const nameArb = fc.stringMatching(NAME);

/** A name-like field: the schema's DNS-label pattern, or a CheckedName (validated by the core, not the schema). */
export function isNameSchema(schema: JsonSchema | undefined): boolean {
  return schema?.pattern === NAME_PATTERN || (schema?.type === 'string' && schema.pattern === undefined && /DNS label/.test(schema.description ?? ''));
}

export function isValidName(value: unknown): boolean {
  return typeof value === 'string' && NAME.test(value);
}

/** Values of the schema's shape: what a well-behaved client sends (lengths kept small, except where huge is the point). */
export function valueOf(schema: JsonSchema): fc.Arbitrary<unknown> {
  if (schema.enum !== undefined) return fc.constantFrom(...schema.enum);
  if (schema.const !== undefined) return fc.constant(schema.const);
  const union = schema.anyOf ?? schema.oneOf;
  if (union !== undefined) return fc.oneof(...union.map(valueOf));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string': {
      if (isNameSchema(schema)) return nameArb;
      if (schema.pattern !== undefined) return fc.stringMatching(new RegExp(schema.pattern)).filter((s) => s.length <= (schema.maxLength ?? Infinity));
      if (schema.format === 'date-time') return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
      const minLength = schema.minLength ?? 0;
      const maxLength = Math.max(minLength, Math.min(schema.maxLength ?? 40, 40));
      return fc.oneof(fc.string({ minLength, maxLength }), fc.string({ minLength, maxLength, unit: 'grapheme' }));
    }
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1_000_000, max: schema.maximum ?? 1_000_000 });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6, noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(schema.items === undefined ? fc.jsonValue() : valueOf(schema.items), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.max(schema.minItems ?? 0, Math.min(schema.maxItems ?? 4, 4)),
      });
    case 'object': {
      const props = schema.properties ?? {};
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [key, sub] of Object.entries(props)) model[key] = valueOf(sub);
      const record = fc.record(model, { requiredKeys: schema.required ?? [] }) as fc.Arbitrary<Record<string, unknown>>;
      const min = schema.minProperties ?? 0;
      return min === 0 ? record : record.filter((r) => Object.keys(r).length >= min);
    }
    default:
      return fc.jsonValue();
  }
}

/** Strings that have broken request handling somewhere: traversal, encodings, NUL, control characters, odd unicode. */
export const HOSTILE_STRINGS = [
  '',
  ' ',
  '.',
  '..',
  '../',
  '../../etc/passwd',
  '..%2F..%2Fetc%2Fpasswd',
  '%2e%2e',
  '%2e%2e%2f',
  '%252e%252e%252f',
  '..\\..\\windows',
  '/etc/passwd',
  '/proc/self/environ',
  '/dev/zero',
  '/',
  '//',
  'a\u0000b',
  '\u0000',
  '%00',
  'name\n',
  '\r\nX-Injected: 1',
  '-rf',
  '--help',
  '$(id)',
  '`id`',
  ';id',
  '|id',
  "'\"<>&",
  '<script>alert(1)</script>',
  '${jndi:ldap://x}',
  '{{7*7}}',
  '__proto__',
  'constructor',
  'NaN',
  'Infinity',
  '-1',
  '0',
  '1e309',
  '9007199254740993',
  '0x10',
  'true',
  'null',
  '[]',
  '{}',
  'A'.repeat(64),
  'UPPER',
  'a_b',
  '\u202eevil',
  '\ud800',
  '\uffff',
  'é',
  '😀😀',
  '\u0130stanbul',
  'a'.repeat(254),
];

/** A hostile string: one of the list, a huge one, or random unicode (lone surrogates included). */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('a', '../', 'é', '\u0000', '%'), fc.constantFrom(300, 5_000, 70_000)).map(([s, n]) => s.repeat(n)) },
);

/** A value of some JSON type, mostly the wrong one for a field: numbers at the edges, nesting, hostile strings. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.constantFrom(-1, 0, -0, 1.5, -2_147_483_649, 2 ** 53 + 1, 1e308, -1e308, Number.MAX_SAFE_INTEGER, 1e-320),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constant([]),
  fc.constant({}),
  fc.jsonValue({ maxDepth: 3 }),
  fc.constant(JSON.parse('{"__proto__": {"polluted": true}}')),
);
