import { describe, expect, it } from 'vitest';
import { formatIssues, parseStackFiles } from './locate.ts';

const TEXT = `kind: network
name: lab
subnet: 10.1.0.0/24
---
kind: instance
name: web
nics:
  - network: user
  - network: lab
    ip: 10.1.0.9
---
`;

describe('parseStackFiles', () => {
  it('splits documents and drops an empty trailing one', () => {
    const { docs, issues } = parseStackFiles([{ path: 's.yaml', text: TEXT }]);
    expect(issues).toEqual([]);
    expect(docs.map((d) => (d.value as { name: string }).name)).toEqual(['lab', 'web']);
    expect(docs.map((d) => d.index)).toEqual([0, 1]);
  });

  it('locates values, keys and list items by path (1-based line and column)', () => {
    const [net, web] = parseStackFiles([{ path: 's.yaml', text: TEXT }]).docs;
    expect(net!.at(['subnet'])).toEqual({ line: 3, column: 9 });
    expect(net!.at(['subnet'], { key: true })).toEqual({ line: 3, column: 1 });
    expect(web!.at(['nics', 1, 'ip'])).toEqual({ line: 10, column: 9 });
    expect(web!.at(['nics', 1])).toEqual({ line: 9, column: 5 });
    expect(web!.at([])).toEqual({ line: 5, column: 1 });
  });

  it('falls back to the nearest node that exists for a missing field', () => {
    const [, web] = parseStackFiles([{ path: 's.yaml', text: TEXT }]).docs;
    expect(web!.at(['memory'])).toEqual({ line: 5, column: 1 });
    expect(web!.at(['nics', 7, 'ip'])).toEqual({ line: 8, column: 3 });
  });

  it('reports YAML syntax errors with their position and keeps the good documents of other files', () => {
    const { docs, issues } = parseStackFiles([
      { path: 'bad.yaml', text: 'kind: volume\nname: [unclosed\n' },
      { path: 'dup.yaml', text: 'kind: pool\nname: a\nname: b\n' },
      { path: 'ok.yaml', text: 'kind: pool\nname: p\npath: /srv\n' },
    ]);
    expect(docs.map((d) => d.file)).toEqual(['ok.yaml']);
    expect(issues.map((i) => `${i.file}:${i.line}`)).toEqual(['bad.yaml:3', 'dup.yaml:3']);
    expect(issues[1]!.message).toMatch(/unique/i);
  });

  it('refuses an alias without its anchor and a document of too many aliases, as issues (never a crash)', () => {
    const laughs = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(', ')}]`)].join('\n');
    const { docs, issues } = parseStackFiles([
      { path: 'alias.yaml', text: 'kind: pool\nname: *nowhere\n' },
      { path: 'laughs.yaml', text: `${laughs}\n` },
    ]);
    expect(docs).toEqual([]);
    expect(issues.map((i) => `${i.file}:${i.line}:${i.column}`)).toEqual(['alias.yaml:1:1', 'laughs.yaml:1:1']);
    expect(issues[0]!.message).toMatch(/^YAML: .*alias/i);
    expect(issues[1]!.message).toMatch(/^YAML: .*alias/i);
  });

  it('formats issues compiler-style, sorted by place', () => {
    const text = formatIssues([
      { file: 'b.yaml', line: 2, column: 1, message: 'second' },
      { file: 'a.yaml', line: 9, column: 3, message: 'first', hint: 'do this' },
    ]);
    expect(text).toBe('a.yaml:9:3: first\n  hint: do this\nb.yaml:2:1: second');
  });
});
