/**
 * Stack files to documents that remember where each value was written: every error about a document names
 * `file:line:column`, the way a compiler does. Pure: text in, documents and YAML syntax errors out.
 */
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node as YamlNode } from 'yaml';

export type Path = ReadonlyArray<string | number>;

export interface Position {
  line: number;
  column: number;
}

/** Something wrong in a file, at a place in it. */
export interface StackIssue extends Position {
  file: string;
  message: string;
  hint?: string;
}

export interface LocatedDoc {
  file: string;
  /** 0-based position of the document in its file. */
  index: number;
  value: unknown;
  /** Where the value at `path` was written (its key with `key`); the nearest enclosing node when it is absent. */
  at(path: Path, options?: { key?: boolean }): Position;
}

export function parseStackFiles(files: ReadonlyArray<{ path: string; text: string }>): { docs: LocatedDoc[]; issues: StackIssue[] } {
  const docs: LocatedDoc[] = [];
  const issues: StackIssue[] = [];
  for (const file of files) {
    const lc = new LineCounter();
    const parsed = parseAllDocuments(file.text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
    const all = Array.isArray(parsed) ? parsed : [];
    if (!Array.isArray(parsed)) {
      issues.push({ file: file.path, line: 1, column: 1, message: 'not a YAML stream' });
      continue;
    }
    let index = 0;
    for (const doc of all) {
      for (const e of doc.errors) {
        const at = lc.linePos(e.pos[0]);
        issues.push({ file: file.path, line: at.line, column: at.col, message: `YAML: ${e.message.split('\n')[0]}` });
      }
      if (doc.errors.length > 0) continue;
      if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue; // an empty document (a trailing `---`)
      try {
        docs.push(locatedDoc(file.path, index, doc, lc));
      } catch (e) {
        // toJS refuses an alias without its anchor, and too many aliases (a "billion laughs" document).
        const at = lc.linePos(doc.contents.range?.[0] ?? 0);
        issues.push({ file: file.path, line: at.line, column: at.col, message: `YAML: ${e instanceof Error ? e.message : String(e)}` });
      }
      index++;
    }
  }
  return { docs, issues };
}

function locatedDoc(file: string, index: number, doc: Document, lc: LineCounter): LocatedDoc {
  const position = (offset: number | undefined): Position => {
    const p = lc.linePos(offset ?? 0);
    return { line: p.line, column: p.col };
  };
  return {
    file,
    index,
    value: doc.toJS({ maxAliasCount: 100 }),
    at(path, options = {}) {
      let node: YamlNode | null | undefined = doc.contents as YamlNode | null;
      let keyNode: YamlNode | undefined;
      for (const step of path) {
        if (isMap(node)) {
          const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === step);
          if (pair === undefined) break;
          keyNode = pair.key as YamlNode;
          node = pair.value as YamlNode | null;
          if (node === null) {
            node = keyNode;
            break;
          }
        } else if (isSeq(node) && typeof step === 'number' && node.items[step] !== undefined) {
          keyNode = undefined;
          node = node.items[step] as YamlNode;
        } else {
          break;
        }
      }
      const target = options.key === true && keyNode !== undefined ? keyNode : node;
      return position(target?.range?.[0]);
    },
  };
}

/** `file:line:column: message` lines, with an indented hint; sorted by file and position. */
export function formatIssues(issues: readonly StackIssue[]): string {
  return [...issues]
    .sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column)
    .map((i) => `${i.file}:${i.line}:${i.column}: ${i.message}${i.hint === undefined ? '' : `\n  hint: ${i.hint}`}`)
    .join('\n');
}
