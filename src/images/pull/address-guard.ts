/**
 * Where a pull asked by a client over TCP may go: not to the daemon host's own services (loopback), its link
 * (link-local, cloud metadata at 169.254.169.254) or private networks, unless the administrator allows it
 * (`virtnode daemon --allow-private-pulls`). Every address a name resolves to is checked, at every redirect.
 * A name that resolves again to another address between the check and the connection (DNS rebinding) is not
 * caught here.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { VirtnodeError } from '../../lib/errors.ts';

/** Checks the host of a URL before a request goes there; throws to refuse it. */
export type AddressGuard = (url: URL) => Promise<void>;

const NOT_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) NOT_PUBLIC.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [['::', 127], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) NOT_PUBLIC.addSubnet(net, prefix, 'ipv6');

function isPublic(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return !NOT_PUBLIC.check(mapped[1]!, 'ipv4');
  return !NOT_PUBLIC.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

export const publicAddressesOnly: AddressGuard = async (url) => {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  } catch {
    return; // an unknown name fails at the request itself, with its own message
  }
  const inside = addresses.find((a) => !isPublic(a));
  if (inside !== undefined) {
    throw new VirtnodeError('PERMISSION', `${url.origin} is ${inside}, an address of this host or of a private network: a client over TCP cannot make the daemon fetch from there`, {
      field: 'url',
      hint: 'serve the image from a public address, or run the daemon with --allow-private-pulls',
    });
  }
};
