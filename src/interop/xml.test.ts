import { describe, expect, it } from 'vitest';
import { isVirtnodeError } from '../lib/errors.ts';
import { parseXml, writeXml } from './xml.ts';

function errorOf(xml: string): string {
  try {
    parseXml(xml, 'domain.xml');
  } catch (e) {
    if (!isVirtnodeError(e, 'INVALID')) throw e;
    return e.message;
  }
  throw new Error('no error');
}

describe('parseXml', () => {
  it('reads elements, attributes, text, entities, CDATA, and skips comments and processing instructions', () => {
    const root = parseXml(`<?xml version="1.0"?>\n<!-- c -->\n<domain type='kvm' a="x &amp; &lt;y&gt; &#65;&#x42;">\n  <name>web&amp;1</name>\n  <!-- inside -->\n  <cmdline><![CDATA[a<b]]></cmdline>\n  <empty/>\n</domain>\n`);
    expect(root.name).toBe('domain');
    expect(Object.fromEntries(root.attributes)).toEqual({ type: 'kvm', a: 'x & <y> AB' });
    expect(root.children.map((c) => [c.name, c.text, c.line])).toEqual([
      ['name', 'web&1', 4],
      ['cmdline', 'a<b', 6],
      ['empty', '', 7],
    ]);
  });

  it('says where a document is broken, by line and column', () => {
    expect(errorOf('<domain>\n  <name>x</nam>\n</domain>')).toBe('domain.xml: line 2, column 10: </nam> closes <name> (line 2)');
    expect(errorOf('<domain>\n  <name>x</name>\n')).toMatch(/^domain.xml: line 3, column 1: <domain> \(line 1\) is not closed/);
    expect(errorOf('<domain a=1/>')).toMatch(/line 1, column 11: the value of a must be quoted/);
    expect(errorOf('<domain a="1" a="2"/>')).toMatch(/line 1, column 15: attribute a appears twice/);
    expect(errorOf('<domain>&nbsp;</domain>')).toMatch(/line 1, column 9: unknown entity &nbsp;/);
    expect(errorOf('<domain>&#x110000;</domain>')).toMatch(/line 1, column 9: &#x110000; is not a character/);
    expect(errorOf('<domain a="&#x;"/>')).toMatch(/line 1, column 12: &#x; is not a character/);
    expect(errorOf('<domain>a & b</domain>')).toMatch(/"&" must start an entity/);
    expect(errorOf('<domain/><other/>')).toMatch(/content after the root element/);
    expect(errorOf('<!DOCTYPE d [<!ENTITY x "y">]><domain/>')).toMatch(/DOCTYPE declarations are not accepted/);
    expect(errorOf('   ')).toMatch(/the document is empty/);
    expect(errorOf('<domain a="1"b="2"/>')).toMatch(/a space was expected/);
  });
});

describe('writeXml', () => {
  it('indents, escapes, and leaves out undefined attributes and children', () => {
    const text = writeXml({ name: 'a', attrs: { x: 'q"<&', y: undefined, n: 3 }, children: [{ name: 'b', text: '1 < 2' }, undefined, { name: 'c' }] });
    expect(text).toBe('<a x="q&quot;&lt;&amp;" n="3">\n  <b>1 &lt; 2</b>\n  <c/>\n</a>\n');
    const back = parseXml(text);
    expect(back.attributes.get('x')).toBe('q"<&');
    expect(back.children[0]!.text).toBe('1 < 2');
  });
});
