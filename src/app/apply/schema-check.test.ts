import { describe, expect, it } from 'vitest';
import { DOCUMENT_SCHEMAS, SUPPORTED_KINDS } from '../../api/stack.ts';
import { checkSchema, type SchemaNode, uncheckedKeywords } from './schema-check.ts';

describe('checkSchema', () => {
  it('checks every keyword the stack schemas use, and nothing in them is left unchecked', () => {
    for (const kind of SUPPORTED_KINDS) expect(uncheckedKeywords(DOCUMENT_SCHEMAS[kind] as SchemaNode), kind).toEqual([]);
    expect(uncheckedKeywords({ anyOf: [] } as SchemaNode)).toEqual(['anyOf']);
  });

  it('accepts a good instance and reports each problem with its path', () => {
    const schema = DOCUMENT_SCHEMAS.instance as SchemaNode;
    expect(checkSchema(schema, { kind: 'instance', name: 'web', kernel: '/k', cpus: 2, nics: [{ network: 'user' }] })).toEqual([]);
    const errors = checkSchema(schema, { kind: 'instancex', name: 'Web', cpus: 0, memory: 5, nics: [{ ip: '1.2.3.4', mac: 'x' }], state: 'up' });
    expect(errors.map((e) => [e.path.join('.'), e.keyword])).toEqual([
      ['kind', 'const'],
      ['name', 'pattern'],
      ['cpus', 'minimum'],
      ['memory', 'type'],
      ['nics.0', 'required'],
      ['nics.0.mac', 'additionalProperties'],
      ['state', 'enum'],
    ]);
  });
});
