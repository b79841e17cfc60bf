/**
 * A small strict XML reader and writer for libvirt's domain XML: elements, attributes, text, comments, CDATA,
 * processing instructions and the five predefined entities plus character references. No DTDs (libvirt writes
 * none; refusing them also refuses entity expansion attacks). Errors carry the line and column.
 */
import { VirtnodeError } from '../lib/errors.ts';

export interface XmlElement {
  name: string;
  attributes: Map<string, string>;
  children: XmlElement[];
  /** The element's own text (its text children joined), not its descendants'. */
  text: string;
  line: number;
}

const NAME = /[A-Za-z_:][A-Za-z0-9_.:-]*/y;
const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

export function parseXml(source: string, field = 'xml'): XmlElement {
  let pos = 0;
  const fail = (message: string, at = pos): never => {
    const before = source.slice(0, at);
    const line = before.split('\n').length;
    const column = at - before.lastIndexOf('\n');
    throw new VirtnodeError('INVALID', `${field}: line ${line}, column ${column}: ${message}`, { field, hint: 'the file must be well-formed XML (check it with: xmllint --noout FILE)' });
  };
  const lineAt = (at: number) => source.slice(0, at).split('\n').length;
  const skipSpace = () => {
    while (pos < source.length && /\s/.test(source[pos]!)) pos++;
  };
  const name = (): string => {
    NAME.lastIndex = pos;
    const m = NAME.exec(source);
    if (m === null) fail('a name was expected');
    pos += m![0].length;
    return m![0];
  };
  const decode = (raw: string, start: number): string =>
    raw.replace(/&([^;&\s]{0,10});?/g, (all, ref: string, offset: number) => {
      if (!all.endsWith(';')) fail(`"&" must start an entity like &amp;`, start + offset);
      if (ref.startsWith('#')) {
        const code = ref.startsWith('#x') ? (/^#x[0-9a-f]+$/i.test(ref) ? parseInt(ref.slice(2), 16) : NaN) : /^#[0-9]+$/.test(ref) ? parseInt(ref.slice(1), 10) : NaN;
        if (!Number.isInteger(code) || code < 1 || code > 0x10ffff) fail(`&${ref}; is not a character`, start + offset);
        return String.fromCodePoint(code);
      }
      const value = ENTITIES[ref];
      if (value === undefined) fail(`unknown entity &${ref};`, start + offset);
      return value!;
    });
  /** Skips comments, processing instructions and whitespace between elements (the prolog, the epilog). */
  const skipMisc = () => {
    for (;;) {
      skipSpace();
      if (source.startsWith('<!--', pos)) {
        const end = source.indexOf('-->', pos + 4);
        if (end < 0) fail('unterminated comment');
        pos = end + 3;
      } else if (source.startsWith('<?', pos)) {
        const end = source.indexOf('?>', pos + 2);
        if (end < 0) fail('unterminated processing instruction');
        pos = end + 2;
      } else if (source.startsWith('<!DOCTYPE', pos)) {
        fail('DOCTYPE declarations are not accepted');
      } else return;
    }
  };
  const element = (): XmlElement => {
    const start = pos;
    if (source[pos] !== '<') fail('"<" was expected');
    pos++;
    const el: XmlElement = { name: name(), attributes: new Map(), children: [], text: '', line: lineAt(start) };
    for (;;) {
      const hadSpace = /\s/.test(source[pos] ?? '');
      skipSpace();
      if (source.startsWith('/>', pos)) {
        pos += 2;
        return el;
      }
      if (source[pos] === '>') {
        pos++;
        break;
      }
      if (pos >= source.length) fail(`unterminated tag <${el.name}>`);
      if (!hadSpace) fail('a space was expected between attributes');
      const attrAt = pos;
      const attr = name();
      skipSpace();
      if (source[pos] !== '=') fail(`"=" was expected after attribute ${attr}`);
      pos++;
      skipSpace();
      const quote = source[pos];
      if (quote !== '"' && quote !== "'") fail(`the value of ${attr} must be quoted`);
      const end = source.indexOf(quote!, pos + 1);
      if (end < 0) fail(`unterminated value of ${attr}`);
      const raw = source.slice(pos + 1, end);
      if (raw.includes('<')) fail(`"<" in the value of ${attr}`, pos + 1 + raw.indexOf('<'));
      if (el.attributes.has(attr)) fail(`attribute ${attr} appears twice`, attrAt);
      el.attributes.set(attr, decode(raw, pos + 1));
      pos = end + 1;
    }
    const text: string[] = [];
    for (;;) {
      if (pos >= source.length) fail(`<${el.name}> (line ${el.line}) is not closed`);
      if (source.startsWith('</', pos)) {
        pos += 2;
        const closing = name();
        if (closing !== el.name) fail(`</${closing}> closes <${el.name}> (line ${el.line})`, pos - closing.length - 2);
        skipSpace();
        if (source[pos] !== '>') fail('">" was expected');
        pos++;
        el.text = text.join('');
        return el;
      }
      if (source.startsWith('<!--', pos)) {
        const end = source.indexOf('-->', pos + 4);
        if (end < 0) fail('unterminated comment');
        pos = end + 3;
      } else if (source.startsWith('<![CDATA[', pos)) {
        const end = source.indexOf(']]>', pos + 9);
        if (end < 0) fail('unterminated CDATA section');
        text.push(source.slice(pos + 9, end));
        pos = end + 3;
      } else if (source.startsWith('<?', pos)) {
        const end = source.indexOf('?>', pos + 2);
        if (end < 0) fail('unterminated processing instruction');
        pos = end + 2;
      } else if (source[pos] === '<') {
        el.children.push(element());
      } else {
        const next = source.indexOf('<', pos);
        const end = next < 0 ? source.length : next;
        text.push(decode(source.slice(pos, end), pos));
        pos = end;
      }
    }
  };
  if (source.trim() === '') fail('the document is empty');
  skipMisc();
  const root = element();
  skipMisc();
  if (pos < source.length) fail('content after the root element');
  return root;
}

/** What writeXml takes: a name, attributes (undefined ones are left out), children or text. */
export interface XmlNode {
  name: string;
  attrs?: Record<string, string | number | undefined>;
  children?: Array<XmlNode | undefined>;
  text?: string;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Indented XML, two spaces a level, attributes in the given order. */
export function writeXml(node: XmlNode, depth = 0): string {
  const pad = '  '.repeat(depth);
  const attrs = Object.entries(node.attrs ?? {})
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${escape(String(v))}"`)
    .join('');
  const children = (node.children ?? []).filter((c): c is XmlNode => c !== undefined);
  if (node.text !== undefined) return `${pad}<${node.name}${attrs}>${escape(node.text)}</${node.name}>\n`;
  if (children.length === 0) return `${pad}<${node.name}${attrs}/>\n`;
  return `${pad}<${node.name}${attrs}>\n${children.map((c) => writeXml(c, depth + 1)).join('')}${pad}</${node.name}>\n`;
}
