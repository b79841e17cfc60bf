import { formatIpv4, parseIpv4 } from './ipv4.ts';

/** The lowest address of [start, end] not in `taken`, or undefined when the range is full. */
export function allocateAddress(start: string, end: string, taken: Iterable<string>): string | undefined {
  const used = new Set([...taken].map((t) => parseIpv4(t)));
  const first = parseIpv4(start)!;
  const last = parseIpv4(end)!;
  for (let a = first; a <= last; a++) if (!used.has(a)) return formatIpv4(a);
  return undefined;
}
