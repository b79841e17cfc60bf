/** Turning command-line text into the API's typed input, with the messages the core gives for the same mistakes. */
import { hostLimits, validateCpus } from '../instances/validate.ts';

/** API limit on vCPUs (src/api/schemas.ts); beyond it, or below 1, the core's message explains. */
const MAX_CPUS = 1024;

export function cpusInput(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= 1 && n <= MAX_CPUS)) validateCpus(text, hostLimits()); // throws the core's --cpus message
  return n;
}
