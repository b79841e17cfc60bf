/**
 * A strict parser of the Prometheus text exposition format 0.0.4: HELP/TYPE lines, samples with escaped label
 * values, float values (NaN, +Inf, -Inf), optional timestamps. It throws on anything the format does not allow:
 * a sample before its TYPE, a family typed twice, a sample of a family that was not declared, bad names, bad
 * escapes, duplicate series.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string | undefined;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''] };

function parseValue(text: string, line: number): number {
  // Values are Go ParseFloat syntax, where NaN is case-insensitive (prom-client writes "Nan", e.g. for an
  // event-loop lag not yet measured right after the daemon starts); the infinities are kept to the spec's spelling.
  if (/^nan$/i.test(text)) return Number.NaN;
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: "${text}" is not a sample value`);
  return Number(text);
}

function parseLabels(text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`line ${line}: label without "="`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`line ${line}: bad label name "${name}"`);
    if (name in labels) throw new Error(`line ${line}: label ${name} twice`);
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label value must be quoted`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const next = text[j + 1];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`line ${line}: bad escape \\${next}`);
        j += 2;
        continue;
      }
      if (c === '\n') throw new Error(`line ${line}: newline in label value`);
      value += c;
      j++;
    }
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (i !== text.length) throw new Error(`line ${line}: expected "," between labels`);
  }
  return labels;
}

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seenSeries = new Set<string>();
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('the exposition must end with a newline');
  lines.forEach((raw, index) => {
    const n = index + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (m === null) return; // other comments are allowed
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`line ${n}: bad metric name "${name}"`);
      const family = families.get(name) ?? { name, type: 'untyped', help: undefined, samples: [] };
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`line ${n}: unknown type "${rest}"`);
        if (families.has(name) && (families.get(name)!.samples.length > 0 || (families.get(name) as Family & { typed?: boolean }).typed)) throw new Error(`line ${n}: TYPE of ${name} given late or twice`);
        family.type = rest;
        (family as Family & { typed?: boolean }).typed = true;
      } else {
        if (family.help !== undefined) throw new Error(`line ${n}: HELP of ${name} twice`);
        family.help = rest;
      }
      families.set(name, family);
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(raw);
    if (m === null) throw new Error(`line ${n}: not a sample: ${raw}`);
    const name = m[1]!;
    const labels = m[3] === undefined || m[3] === '' ? {} : parseLabels(m[3], n);
    const value = parseValue(m[4]!, n);
    let family: Family | undefined;
    for (const f of families.values()) {
      const suffixes = SUFFIXES[f.type] ?? [''];
      if (suffixes.some((s) => f.name + s === name)) family = f;
    }
    if (family === undefined) throw new Error(`line ${n}: sample ${name} has no TYPE before it`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seenSeries.has(key)) throw new Error(`line ${n}: series ${key} twice`);
    seenSeries.add(key);
    if (family.type === 'counter' && (value < 0 || Number.isNaN(value))) throw new Error(`line ${n}: counter ${name} is ${value}`);
    family.samples.push({ name, labels, value });
  });
  return families;
}

/** The value of one series, or undefined. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string>): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}
