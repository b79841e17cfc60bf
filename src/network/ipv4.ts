import { invalid } from '../lib/errors.ts';

/** IPv4 addresses as unsigned 32-bit integers; small and exact (virtnode's managed networks are IPv4). */
const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export interface Cidr {
  /** The network address (host bits zero). */
  network: number;
  prefix: number;
}

export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff - (2 ** (32 - prefix) - 1)) >>> 0;
}

export function netmaskText(prefix: number): string {
  return formatIpv4(mask(prefix));
}

/** `A.B.C.D/N`; with `strict`, host bits must be zero (a subnet, not an address in it). */
export function parseCidr(field: string, text: string, options: { strict?: boolean } = {}): Cidr & { address: number } {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(text.trim());
  const address = match === null ? undefined : parseIpv4(match[1]!);
  const prefix = match === null ? Number.NaN : Number(match[2]);
  if (address === undefined || !(prefix >= 0 && prefix <= 32)) {
    throw invalid(field, `"${text}" is not an IPv4 CIDR`, 'write it as ADDRESS/PREFIX, e.g. 10.77.0.0/24');
  }
  const network = (address & mask(prefix)) >>> 0;
  if (options.strict && network !== address) {
    throw invalid(field, `"${text}" has host bits set`, `did you mean ${formatIpv4(network)}/${prefix}?`);
  }
  return { network, prefix, address };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.network)}/${c.prefix}`;
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function broadcast(c: Cidr): number {
  return c.network + size(c) - 1;
}

export function contains(c: Cidr, address: number): boolean {
  return address >= c.network && address <= broadcast(c);
}

/** A usable host address: inside, and neither the network nor the broadcast address. */
export function isHostAddress(c: Cidr, address: number): boolean {
  return address > c.network && address < broadcast(c);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.network <= broadcast(b) && b.network <= broadcast(a);
}
