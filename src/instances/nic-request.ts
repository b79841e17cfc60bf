import { invalid } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import { USER_NETWORK } from './model.ts';

/** One NIC as asked for: the user-mode network, or a managed network with an optional static address. */
export interface NicRequest {
  network: string;
  ip?: string;
  /** Keep this MAC (an imported definition's); otherwise a new unique one is made. */
  mac?: string;
}

function list(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/**
 * `--network NAME` (repeatable: one NIC each, in order) and `--ip ADDR` (repeatable: the i-th --ip goes to the
 * i-th managed --network; `auto` leaves one to DHCP). No --network: one user-mode NIC; `--network none`: no NIC.
 */
export function validateNicRequests(networks: string | string[] | undefined, ips: string | string[] | undefined, defaults: NicRequest[] = [{ network: USER_NETWORK }]): NicRequest[] {
  const names = list(networks);
  const addresses = list(ips);
  if (names.length === 0) {
    if (addresses.length > 0) throw invalid('--ip', 'needs a --network NAME to put the address on', 'e.g. --network lab --ip 10.77.0.50');
    return defaults.map((d) => ({ ...d }));
  }
  if (names.includes('none')) {
    if (names.length > 1 || addresses.length > 0) throw invalid('--network', '"none" means no NIC at all and cannot be combined with other --network or --ip');
    return [];
  }
  const nics: NicRequest[] = names.map((n) => ({ network: n === USER_NETWORK ? n : validateName('--network', n) }));
  const managed = nics.filter((n) => n.network !== USER_NETWORK);
  if (addresses.length > managed.length) {
    throw invalid('--ip', `${addresses.length} addresses for ${managed.length} managed network(s)`, 'give at most one --ip per --network NAME, in the same order (`auto` for DHCP)');
  }
  addresses.forEach((a, i) => {
    if (a !== 'auto') managed[i]!.ip = a;
  });
  return nics;
}
