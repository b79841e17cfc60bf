import { invalid } from '../lib/errors.ts';

/** Linux IFNAMSIZ is 16 bytes with the terminating NUL. */
export const IFNAME_MAX_CHARS = 15;

/** Refuses what the kernel refuses for a network interface name (dev_valid_name), with a reason. */
export function validateInterfaceName(field: string, name: string): string {
  const hint = `use 1-${IFNAME_MAX_CHARS} characters without '/', ':', whitespace or quotes, e.g. br0`;
  if (name === '' || name === '.' || name === '..') throw invalid(field, `"${name}" is not a valid interface name`, hint);
  if (Buffer.byteLength(name) > IFNAME_MAX_CHARS) {
    throw invalid(field, `"${name}" is longer than ${IFNAME_MAX_CHARS} characters (the Linux limit for interface names)`, hint);
  }
  // '/' and whitespace are refused by the kernel; ':' is alias syntax; quotes and control characters break tools.
  if (/[/:\s"'\\\0-\x1f\x7f]/.test(name)) throw invalid(field, `"${name}" contains a character interface names cannot have`, hint);
  return name;
}
