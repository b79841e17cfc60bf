import { invalid } from '../lib/errors.ts';

export type OutputFormat = 'table' | 'json' | 'yaml';
const FORMATS: readonly OutputFormat[] = ['table', 'json', 'yaml'];

export function parseFormat(value: string | undefined): OutputFormat {
  const format = (value ?? 'table') as OutputFormat;
  if (!FORMATS.includes(format)) throw invalid('--format', `"${value}" is not valid`, 'use table, json or yaml');
  return format;
}

/** Structured data as JSON or YAML; `table` is handled by the caller with `table()`. */
export async function structured(data: unknown, format: 'json' | 'yaml'): Promise<string> {
  if (format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  const { stringify } = await import('yaml'); // loaded only when asked for: it is the heaviest import
  return stringify(data);
}

/**
 * The --format option, checked before any work is done; then prints an answer as JSON or YAML, or as the text
 * `table()` renders from it.
 */
export function printer(format: string | undefined): (data: unknown, table: () => string) => Promise<void> {
  const f = parseFormat(format);
  return async (data, text) => {
    process.stdout.write(f === 'table' ? text() : await structured(data, f));
  };
}

/** A plain aligned table; no box drawing, so it greps and pipes well. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Key/value block for `info` in table format. */
export function keyValues(pairs: Array<[string, string | number | undefined]>): string {
  const shown = pairs.filter((p): p is [string, string | number] => p[1] !== undefined && p[1] !== '');
  const width = Math.max(...shown.map(([k]) => k.length));
  return shown.map(([k, v]) => `${(k === '' ? '' : `${k}:`).padEnd(width + 2)}${v}`).join('\n') + '\n';
}
