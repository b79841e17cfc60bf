/** Turning command-line text into the API's typed input, with the messages the core gives for the same mistakes. */
import { hostLimits, validateCpus } from '../host/limits.ts';
import { MOVE_DOWNTIME_LIMIT_MS, type RestartPolicy } from '../instances/model.ts';
import { invalid } from '../lib/errors.ts';
import { MIB, parseSize } from '../lib/units.ts';
import { RESTART_POLICIES } from '../store/policies.ts';

/** API limit on vCPUs (src/api/schemas.ts); beyond it, or below 1, the core's message explains. */
const MAX_CPUS = 1024;

export function cpusInput(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= 1 && n <= MAX_CPUS)) validateCpus(text, hostLimits()); // throws the core's --cpus message
  return n;
}

export function restartPolicyInput(text: string | undefined): RestartPolicy | undefined {
  if (text === undefined) return undefined;
  if (!(RESTART_POLICIES as readonly string[]).includes(text)) throw invalid('--restart', `"${text}" is not valid`, 'use no, on-failure or always');
  return text as RestartPolicy;
}

/** `logs --lines N` / `--all`: how much of the log so far; undefined lines means all of it. */
export function logTailInput(o: { lines?: string; all?: boolean }, defaultLines: number): { lines?: number } {
  if (o.all === true && o.lines !== undefined) throw invalid('--lines', 'cannot be given with --all', 'give one of them');
  if (o.all === true) return {};
  if (o.lines === undefined) return { lines: defaultLines };
  if (!/^\d{1,8}$/.test(o.lines)) throw invalid('--lines', `"${o.lines}" is not a whole number`, 'e.g. --lines 50, or --all for the whole log');
  return { lines: Number(o.lines) };
}

/** `move --postcopy auto|never`. */
export function postcopyInput(text: string | undefined): 'auto' | 'never' | undefined {
  if (text === undefined) return undefined;
  if (text !== 'auto' && text !== 'never') throw invalid('--postcopy', `"${text}" is not valid`, 'use auto (switch to post-copy when pre-copy cannot converge) or never');
  return text;
}

/** `move --bandwidth RATE`: a size per second (50M, 1G; a bare number is MiB) as the API's whole MiB/s. */
export function bandwidthInput(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const hint = 'use a rate in MiB/s or GiB/s, such as 50M or 1G (per second)';
  const bytes = /^\s*-/.test(text) ? 0 : parseSize('--bandwidth', text.replace(/\/s$/i, ''), 'M');
  if (bytes < MIB || bytes % MIB !== 0) throw invalid('--bandwidth', `"${text}" is not a whole number of MiB/s of at least 1`, hint);
  return bytes / MIB;
}

/** `move --downtime-limit MS`: whole milliseconds in the API's range. */
export function downtimeLimitInput(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const { min, max } = MOVE_DOWNTIME_LIMIT_MS;
  const n = /^\d{1,9}$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!(n >= min && n <= max)) throw invalid('--downtime-limit', `"${text}" is not a whole number of milliseconds from ${min} to ${max}`, `e.g. --downtime-limit 300 (default ${MOVE_DOWNTIME_LIMIT_MS.default})`);
  return n;
}
