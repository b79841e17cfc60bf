/** What virtnode accepts as a name or a MAC: checks without side effects (no randomness, no crypto to load). */
import { invalid } from './errors.ts';

/** Instance, image, network names: a DNS label, so the name can also be the guest's hostname. */
const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function validateName(field: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? `"${name.slice(0, 80)}"` : String(name);
    throw invalid(
      field,
      `${shown} is not a valid name`,
      'use 1-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit (a DNS label)',
    );
  }
  return name;
}

const MAC_PATTERN = /^52:54:00(:[0-9a-f]{2}){3}$/;

export function validateMac(field: string, mac: string): string {
  const lower = mac.toLowerCase();
  if (!MAC_PATTERN.test(lower)) throw invalid(field, `"${mac}" is not a valid MAC`, 'use 52:54:00:xx:xx:xx (hex)');
  return lower;
}
