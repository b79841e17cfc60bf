/**
 * Cloud-config validation: pure and fast, run before anything is created, so a typo in user-data is reported
 * with file, line and column instead of surfacing as a guest that silently ignored it.
 *
 * The YAML is read as YAML 1.1, like PyYAML in cloud-init (bare yes/no/on/off are booleans, 0644 is the integer
 * 420, an unquoted date is a timestamp), so types are judged exactly as the guest will see them.
 */
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import { ALL_KEYS, specFor } from './validate/modules.ts';
import { closest, isMapping, showValue } from './validate/schema.ts';
import type { Ctx, Path, RawIssue } from './validate/schema.ts';

export interface ValidationIssue {
  severity: 'error' | 'warning';
  /** Where in the config, e.g. `users[0].sudo`; empty for the document as a whole. */
  path: string;
  message: string;
  /** 1-based. */
  line?: number;
  /** 1-based. */
  column?: number;
  hint?: string;
}

export interface ValidationResult {
  /** No errors (warnings allowed). */
  ok: boolean;
  issues: ValidationIssue[];
  /** The parsed config, when the YAML could be read and its top level is a mapping. */
  config?: Record<string, unknown>;
}

export type UserDataKind = 'cloud-config' | 'script' | 'include' | 'jinja' | 'mime' | 'unknown';

export const CLOUD_CONFIG_HEADER = '#cloud-config';

const OTHER_KINDS_HINT =
  'user-data that is not cloud-config (`#!` scripts, `#include` URL lists, `## template: jinja`, MIME multipart) ' +
  'is another user-data type: virtnode passes it to the guest untouched and does not validate it';

function firstLine(text: string): string {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const nl = body.indexOf('\n');
  return (nl === -1 ? body : body.slice(0, nl)).replace(/\r$/, '');
}

/** What kind of user-data this is, from its first line (as cloud-init decides). */
export function userDataKind(text: string): UserDataKind {
  const line = firstLine(text);
  if (/^#cloud-config\s*$/.test(line)) return 'cloud-config';
  if (line.startsWith('#!')) return 'script';
  if (/^#include(-once)?(\s|$)/.test(line)) return 'include';
  if (/^##\s*template:\s*jinja\s*$/i.test(line)) return 'jinja';
  if (/^(content-type|mime-version):/i.test(line)) return 'mime';
  return 'unknown';
}

function headerIssue(text: string): ValidationIssue | undefined {
  const kind = userDataKind(text);
  if (kind === 'cloud-config') return undefined;
  const line = firstLine(text);
  const what: Record<Exclude<UserDataKind, 'cloud-config'>, string> = {
    script: 'this is a script (starts with "#!"), not cloud-config',
    include: 'this is an #include list, not cloud-config',
    jinja: 'this is a jinja template; it can only be validated after rendering',
    mime: 'this is MIME multipart user-data, not cloud-config',
    unknown:
      line.trim() === ''
        ? `the first line must be "${CLOUD_CONFIG_HEADER}", but it is empty`
        : `the first line must be "${CLOUD_CONFIG_HEADER}", got ${JSON.stringify(line.length > 40 ? `${line.slice(0, 37)}...` : line)}`,
  };
  const near = line.startsWith('#') && kind === 'unknown' && closest(line.trim().toLowerCase(), [CLOUD_CONFIG_HEADER], 3) !== undefined;
  return {
    severity: 'error',
    path: '',
    message: what[kind],
    line: 1,
    column: 1,
    hint: near ? `write exactly "${CLOUD_CONFIG_HEADER}" (no space after #, lower case); ${OTHER_KINDS_HINT}` : `start the file with "${CLOUD_CONFIG_HEADER}"; ${OTHER_KINDS_HINT}`,
  };
}

/** `users[0].sudo`, `ssh_keys["odd key"]`. */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

interface Located {
  node: YamlNode;
  keyNode?: YamlNode;
}

/** Walk the YAML tree along `path`; stops at the deepest node found (merge keys and the like). */
function locate(doc: Document, path: Path): Located | undefined {
  let current: unknown = doc.contents;
  let keyNode: YamlNode | undefined;
  let found: Located | undefined = current === null ? undefined : { node: current as YamlNode };
  for (const seg of path) {
    if (isAlias(current)) current = current.resolve(doc);
    keyNode = undefined;
    let next: unknown;
    if (isMap(current)) {
      for (const pair of current.items) {
        const k: unknown = isScalar(pair.key) ? pair.key.value : pair.key;
        if (String(k) === String(seg)) {
          next = pair.value;
          keyNode = isScalar(pair.key) ? pair.key : undefined;
          // keep looking: with duplicate keys the last one is the value cloud-init sees
        }
      }
    } else if (isSeq(current) && typeof seg === 'number') {
      next = current.items[seg];
    }
    if (next === undefined || next === null) {
      // `key:` with no value: point at the key
      if (keyNode !== undefined) found = { node: keyNode, keyNode };
      return found;
    }
    current = next;
    found = keyNode === undefined ? { node: next as YamlNode } : { node: next as YamlNode, keyNode };
  }
  return found;
}

function position(lc: LineCounter, node: YamlNode | undefined): { line: number; column: number } | undefined {
  const range = node?.range;
  if (range === undefined || range === null) return undefined;
  const pos = lc.linePos(range[0]);
  return { line: pos.line, column: pos.col };
}

/** Keys written twice in one mapping: PyYAML keeps the last silently, which usually hides a mistake. */
function duplicateKeys(doc: Document, lc: LineCounter, out: ValidationIssue[]): void {
  const walk = (node: unknown, path: (string | number)[]): void => {
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const k = isScalar(pair.key) ? String(pair.key.value) : undefined;
        if (k !== undefined) {
          if (seen.has(k)) {
            const pos = position(lc, pair.key as YamlNode);
            out.push({
              severity: 'warning',
              path: formatPath([...path, k]),
              message: `key "${k}" appears more than once; cloud-init uses only the last one`,
              ...(pos === undefined ? {} : pos),
              hint: 'merge the two entries into one',
            });
          }
          seen.add(k);
          walk(pair.value, [...path, k]);
        }
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    }
  };
  walk(doc.contents, []);
}

/** The parser's first line, without the position it repeats (we report that separately). */
function yamlMessage(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?\s*$/, '');
}

function finish(issues: ValidationIssue[], config?: Record<string, unknown>): ValidationResult {
  issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  const ok = !issues.some((i) => i.severity === 'error');
  return config === undefined ? { ok, issues } : { ok, issues, config };
}

/**
 * Validate cloud-config user-data. Never throws for bad input: everything wrong is an issue.
 * `options.source` (the file name) is accepted for symmetry with formatIssues, which prints it; the result
 * itself carries no file name so it can be cached or sent over the API as is.
 */
export function validateCloudConfig(text: string, _options: { source?: string } = {}): ValidationResult {
  const issues: ValidationIssue[] = [];
  const header = headerIssue(text);
  if (header !== undefined) return finish([header]);

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { version: '1.1', lineCounter, uniqueKeys: false, prettyErrors: true });
  for (const e of doc.errors) {
    const pos = e.linePos?.[0];
    issues.push({
      severity: 'error',
      path: '',
      message: `YAML: ${yamlMessage(e.message)}`,
      ...(pos === undefined ? {} : { line: pos.line, column: pos.col }),
      hint: /tab/i.test(e.message) ? 'indent with spaces, never tabs' : 'check indentation, quotes and colons around this position',
    });
  }
  if (doc.errors.length > 0) return finish(issues);
  for (const w of doc.warnings) {
    const pos = w.linePos?.[0];
    issues.push({ severity: 'warning', path: '', message: `YAML: ${yamlMessage(w.message)}`, ...(pos === undefined ? {} : { line: pos.line, column: pos.col }) });
  }

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    issues.push({ severity: 'error', path: '', message: `YAML: ${e instanceof Error ? e.message : String(e)}`, line: 1, column: 1 });
    return finish(issues);
  }
  if (!isMapping(value)) {
    const pos = position(lineCounter, (doc.contents ?? undefined) as YamlNode | undefined);
    issues.push({
      severity: 'error',
      path: '',
      message: value === null || value === undefined ? 'the cloud-config is empty; its top level must be a mapping' : `the top level must be a mapping of keys, got ${showValue(value)}`,
      ...(pos ?? { line: 1, column: 1 }),
      hint: 'write "key: value" lines, e.g. "hostname: web1"',
    });
    return finish(issues);
  }
  const config = value;

  duplicateKeys(doc, lineCounter, issues);

  const ctx: Ctx = { issues: [] };
  for (const [key, v] of Object.entries(config)) {
    const spec = specFor(key);
    if (spec !== undefined) {
      spec.check(v, [key], ctx);
    } else if (!ALL_KEYS.includes(key)) {
      const near = closest(key, ALL_KEYS);
      ctx.issues.push({
        severity: 'warning',
        path: [key],
        message: `unknown key "${key}": cloud-init will ignore it`,
        ...(near === undefined ? {} : { hint: `did you mean "${near}"?` }),
        at: 'key',
      });
    }
  }
  for (const raw of ctx.issues) issues.push(toIssue(doc, lineCounter, raw));
  return finish(issues, config);
}

function toIssue(doc: Document, lc: LineCounter, raw: RawIssue): ValidationIssue {
  const loc = locate(doc, raw.path);
  const pos = position(lc, raw.at === 'key' ? (loc?.keyNode ?? loc?.node) : loc?.node);
  return {
    severity: raw.severity,
    path: formatPath(raw.path),
    message: raw.message,
    ...(pos === undefined ? {} : pos),
    ...(raw.hint === undefined ? {} : { hint: raw.hint }),
  };
}

/** Compiler-style lines: `FILE:LINE:COL: error: users[0].sudo: message` and an indented hint. */
export function formatIssues(result: ValidationResult, source: string): string {
  return result.issues
    .map((i) => {
      const where = i.line === undefined ? source : i.column === undefined ? `${source}:${i.line}` : `${source}:${i.line}:${i.column}`;
      const head = `${where}: ${i.severity}: ${i.path === '' ? '' : `${i.path}: `}${i.message}`;
      return i.hint === undefined ? head : `${head}\n  hint: ${i.hint}`;
    })
    .join('\n');
}
