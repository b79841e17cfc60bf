/** A small reader of the Prometheus text format: enough to chart one instance's series. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const label of (match[3] ?? '').matchAll(LABEL)) labels[label[1]!] = label[2]!.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
    const value = Number(match[4]);
    if (Number.isNaN(value) && match[4] !== 'NaN') continue; // not a sample line
    samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}

/** The sum of a metric's samples for one instance (over devices), or undefined if it has none. */
export function instanceTotal(samples: Sample[], metric: string, instance: string): number | undefined {
  let total: number | undefined;
  for (const s of samples) {
    if (s.name === metric && s.labels['instance'] === instance && Number.isFinite(s.value)) total = (total ?? 0) + s.value;
  }
  return total;
}
