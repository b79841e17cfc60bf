/**
 * Checks the console's forms run as the user types, before anything is sent. They mirror the API's own rules
 * (the schemas' name pattern, the shapes the core parses); the daemon still has the last word and its error is
 * shown as it comes back.
 */
import { NAME_PATTERN } from '../../../src/api/schemas.ts';

const NAME = new RegExp(NAME_PATTERN);

/** undefined: valid. Otherwise the message to show under the field. */
export type Check = (value: string) => string | undefined;

export const required =
  (what: string): Check =>
  (value) =>
    value.trim() === '' ? `${what} is required` : undefined;

export const name: Check = (value) => {
  if (value === '') return 'a name is required';
  if (value.length > 63) return 'at most 63 characters';
  return NAME.test(value) ? undefined : 'lowercase letters, digits and hyphens, starting and ending with a letter or digit';
};

export const optional =
  (check: Check): Check =>
  (value) =>
    value.trim() === '' ? undefined : check(value.trim());

export const url: Check = (value) => (/^https?:\/\/[^\s/]+/.test(value.trim()) ? undefined : 'an http:// or https:// address');

export const sha256: Check = (value) => (/^[0-9a-fA-F]{64}$/.test(value.trim()) ? undefined : '64 hexadecimal digits');

/** Extra Debian packages, separated by spaces or commas (names as dpkg allows them). */
export const packages: Check = (value) => {
  const bad = value.split(/[\s,]+/).filter((p) => p !== '' && !/^[a-z0-9][a-z0-9+.-]+$/.test(p));
  return bad.length === 0 ? undefined : `not a Debian package name: ${bad.join(' ')}`;
};

export const absolutePath: Check = (value) => (value.trim().startsWith('/') ? undefined : "an absolute path on the daemon's host, e.g. /srv/images/disk.qcow2");

/** 512M, 10G, 1T, or a bare number of bytes (as the core's size parser). */
export const size: Check = (value) => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT](?:i?B)?|B)?\s*$/i.exec(value);
  if (match === null) return 'a size such as 512M, 10G or 1T';
  return Number(match[1]) > 0 ? undefined : 'must be greater than zero';
};

function ipv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return bytes.every((b) => b >= 0 && b <= 255) ? bytes : undefined;
}

/** An IPv4 network in CIDR notation whose host bits are zero, /8 to /30. */
export const cidr: Check = (value) => {
  const match = /^([\d.]+)\/(\d{1,2})$/.exec(value.trim());
  if (match === null) return 'an IPv4 network in CIDR notation, e.g. 10.77.0.0/24';
  const bytes = ipv4(match[1]!);
  if (bytes === undefined) return `${match[1]} is not an IPv4 address`;
  const prefix = Number(match[2]);
  if (prefix < 8 || prefix > 30) return 'the prefix length must be between /8 and /30';
  const address = bytes.reduce((a, b) => a * 256 + b, 0);
  const hostBits = 2 ** (32 - prefix);
  if (address % hostBits !== 0) return `host bits are set: the network of this address is ${networkOf(address, hostBits)}/${prefix}`;
  return undefined;
};

function networkOf(address: number, hostBits: number): string {
  const n = address - (address % hostBits);
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** FIRST-LAST, two IPv4 addresses. */
export const dhcpRange: Check = (value) => {
  const [first, last, extra] = value.trim().split('-');
  if (first === undefined || last === undefined || extra !== undefined || ipv4(first) === undefined || ipv4(last) === undefined) return 'FIRST-LAST, e.g. 10.77.0.100-10.77.0.200';
  return undefined;
};

/** A Linux interface name: 1-15 characters, no slash or whitespace. */
export const bridgeName: Check = (value) => {
  if (value.trim() === '') return 'the existing bridge to join is required';
  return /^[A-Za-z0-9_.-]{1,15}$/.test(value.trim()) ? undefined : 'an interface name: at most 15 letters, digits, dots, hyphens or underscores';
};

/** Runs each field's check; the form may be sent when the result is empty. */
export function checkAll<K extends string>(values: Record<K, string>, checks: Partial<Record<K, Check>>): Partial<Record<K, string>> {
  const errors: Partial<Record<K, string>> = {};
  for (const key of Object.keys(checks) as K[]) {
    const message = checks[key]!(values[key]);
    if (message !== undefined) errors[key] = message;
  }
  return errors;
}

/** HOST:GUEST[/tcp|udp], ports 1-65535 (as `virtnode port add`). */
export const portForward: Check = (value) => {
  const match = /^\s*(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?\s*$/.exec(value);
  if (match === null) return 'HOST:GUEST, optionally /tcp or /udp, e.g. 8080:80';
  for (const port of [match[1], match[2]]) if (Number(port) < 1 || Number(port) > 65535) return `${port} is not a port (1-65535)`;
  return undefined;
};

/** An IPv4 address. */
export const ipv4Address: Check = (value) => (ipv4(value.trim()) === undefined ? 'an IPv4 address, e.g. 10.77.0.10' : undefined);

/** SERVER:/EXPORT, as `virtnode pool create --type nfs --source` takes it. */
export const nfsSource: Check = (value) => (/^[A-Za-z0-9.[\]:-]+:\/\S*$/.test(value.trim()) ? undefined : 'SERVER:/EXPORT, e.g. 192.0.2.10:/srv/vm-disks');
