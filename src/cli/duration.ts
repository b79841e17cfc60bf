import { invalid } from '../lib/errors.ts';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** A duration option: whole seconds (60) or a number with a unit (500ms, 90s, 10m, 1h, 30d). */
export function parseDuration(field: string, text: string): number {
  const match = /^(\d{1,9})(ms|s|m|h|d)?$/.exec(text);
  if (match === null) throw invalid(field, `"${text}" is not a duration`, 'use seconds (60), or 500ms, 90s, 10m, 1h, 30d');
  return Number(match[1]) * UNIT_MS[(match[2] ?? 's') as keyof typeof UNIT_MS];
}
