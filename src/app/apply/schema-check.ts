/**
 * Checks a document against its stack schema (src/api/stack.ts). The stack schemas use a small part of JSON
 * Schema (objects, strings, integers, booleans, arrays, enums, constants); this checker covers exactly that part
 * and refuses a schema with any other keyword (a unit test walks every stack schema), so the CLI need not load
 * typebox's value module, which the CLI bundle does not carry.
 */
export interface SchemaError {
  /** Where, as a path of keys and indexes. */
  path: Array<string | number>;
  keyword: 'type' | 'required' | 'additionalProperties' | 'pattern' | 'enum' | 'const' | 'minimum' | 'maximum' | 'minLength' | 'maxLength' | 'minItems' | 'maxItems';
  message: string;
  /** additionalProperties: the unknown key; required: the missing one. */
  property?: string;
}

export interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  required?: string[];
  additionalProperties?: boolean;
  items?: SchemaNode;
  pattern?: string;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
}

/** Keywords the checker understands; annotations (description...) change nothing. */
export const CHECKED_KEYWORDS = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'pattern', 'enum', 'const', 'minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems']);
export const ANNOTATIONS = new Set(['description', 'title', 'default', '$id', '~kind', '~optional', 'nullable']);

const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v);

export function checkSchema(schema: SchemaNode, value: unknown, path: Array<string | number> = []): SchemaError[] {
  const out: SchemaError[] = [];
  const t = typeOf(value);
  if (schema.const !== undefined && value !== schema.const) out.push({ path, keyword: 'const', message: `must be ${JSON.stringify(schema.const)}` });
  if (schema.type !== undefined && !(schema.type === t || (schema.type === 'number' && t === 'integer'))) {
    out.push({ path, keyword: 'type', message: `must be ${schema.type === 'object' ? 'a mapping' : schema.type === 'array' ? 'a list' : `${schema.type === 'integer' ? 'an' : 'a'} ${schema.type}`}` });
    return out;
  }
  if (schema.enum !== undefined && !schema.enum.includes(value)) out.push({ path, keyword: 'enum', message: `must be one of ${schema.enum.map((e) => String(e)).join(', ')}` });
  if (typeof value === 'string') {
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) out.push({ path, keyword: 'pattern', message: `does not match ${schema.pattern}` });
    if (schema.minLength !== undefined && value.length < schema.minLength) out.push({ path, keyword: 'minLength', message: `must not be shorter than ${schema.minLength} characters` });
    if (schema.maxLength !== undefined && value.length > schema.maxLength) out.push({ path, keyword: 'maxLength', message: `must not be longer than ${schema.maxLength} characters` });
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) out.push({ path, keyword: 'minimum', message: `must be at least ${schema.minimum}` });
    if (schema.maximum !== undefined && value > schema.maximum) out.push({ path, keyword: 'maximum', message: `must be at most ${schema.maximum}` });
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) out.push({ path, keyword: 'minItems', message: `must have at least ${schema.minItems} items` });
    if (schema.maxItems !== undefined && value.length > schema.maxItems) out.push({ path, keyword: 'maxItems', message: `must have at most ${schema.maxItems} items` });
    if (schema.items !== undefined) value.forEach((item, i) => out.push(...checkSchema(schema.items!, item, [...path, i])));
  }
  if (t === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (obj[key] === undefined) out.push({ path, keyword: 'required', property: key, message: `missing field "${key}"` });
    for (const [key, v] of Object.entries(obj)) {
      const sub = schema.properties?.[key];
      if (sub !== undefined) out.push(...checkSchema(sub, v, [...path, key]));
      else if (schema.additionalProperties === false) out.push({ path: [...path, key], keyword: 'additionalProperties', property: key, message: `unknown field "${key}"` });
    }
  }
  return out;
}

/** Keywords of `schema` (anywhere in it) that the checker would not check. */
export function uncheckedKeywords(schema: SchemaNode): string[] {
  const found = new Set<string>();
  const walk = (s: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(s)) {
      if (!CHECKED_KEYWORDS.has(k) && !ANNOTATIONS.has(k)) found.add(k);
      if (k === 'properties') for (const p of Object.values(v as Record<string, Record<string, unknown>>)) walk(p);
      if (k === 'items') walk(v as Record<string, unknown>);
    }
  };
  walk(schema as Record<string, unknown>);
  return [...found];
}
