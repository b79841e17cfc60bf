/** Turning command-line text into the API's typed input, with the messages the core gives for the same mistakes. */
import { hostLimits } from '../host/limits.ts';
import { validateCpus } from '../instances/validate.ts';
import type { RestartPolicy } from '../instances/model.ts';
import { invalid } from '../lib/errors.ts';
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
