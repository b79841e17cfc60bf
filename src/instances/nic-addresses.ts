import { VirtnodeError } from '../lib/errors.ts';
import { allocateAddress } from '../network/allocate.ts';
import type { Lease } from '../network/dnsmasq-config.ts';
import type { NetworkService } from '../network/service.ts';
import { validateStaticAddress } from '../network/validate.ts';
import type { InstanceRepository } from '../store/instances.ts';
import { type Nic, USER_NETWORK } from './model.ts';
import type { NicRequest } from './nic-request.ts';

/**
 * A NIC record for a request: on a nat or isolated network it gets an address, the one asked for (checked: inside
 * the subnet, not the gateway, not taken) or the lowest free one of the DHCP range (nor leased to another MAC),
 * which dnsmasq then reserves for its MAC. Call inside an IMMEDIATE transaction, so two concurrent creates never get
 * the same address. `pending` holds NICs resolved earlier in the same request, not yet stored.
 */
export function resolveNic(repo: InstanceRepository, networks: NetworkService, request: NicRequest, nic: { index: number; mac: string }, owner: string, pending: Nic[]): Nic {
  if (request.network === USER_NETWORK) return { ...nic, network: USER_NETWORK };
  const network = networks.mustGet(request.network);
  if (process.getuid?.() !== 0) {
    throw new VirtnodeError('PERMISSION', `--network ${network.name}: NICs on managed networks need root (taps, bridges)`, {
      field: '--network',
      hint: 'run it with sudo, or leave --network out for the user-mode network',
    });
  }
  if (network.ipv4 === undefined) {
    if (request.ip !== undefined) validateStaticAddress('--ip', network, request.ip, new Map()); // explains why not
    return { ...nic, network: network.name };
  }
  const taken = new Map<string, string>([[network.ipv4.gateway, 'the host (gateway)']]);
  for (const n of repo.nicsOn(network.name)) if (n.address !== undefined) taken.set(n.address, `instance ${n.instance}`);
  // Held on another host by the same MAC: the NIC itself, arriving here (a move), keeps its address.
  for (const [address, held] of networks.takenElsewhere(network.name)) if (held.mac !== request.mac) taken.set(address, held.owner);
  for (const n of pending) if (n.network === network.name && n.address !== undefined) taken.set(n.address, `${owner} (another of its NICs)`);
  if (request.ip !== undefined) {
    return { ...nic, network: network.name, address: validateStaticAddress('--ip', network, request.ip, taken), staticAddress: true };
  }
  // dnsmasq does not hand out a reserved address while another MAC's lease on it runs (a guest killed without a
  // DHCP release, an unmanaged client): "not using configured address ... because it is leased to ...".
  const leasedToOthers = unexpiredLeases(networks, network.name).filter((l) => l.mac !== nic.mac.toLowerCase());
  const address = allocateAddress(network.ipv4.dhcpStart, network.ipv4.dhcpEnd, [...taken.keys(), ...leasedToOthers.map((l) => l.address)]);
  if (address === undefined) {
    throw new VirtnodeError('CONFLICT', `--network: network ${network.name} has no free address left in ${network.ipv4.dhcpStart}-${network.ipv4.dhcpEnd}`, {
      field: '--network',
      hint: 'remove instances from it (a lease of a removed one frees its address when it ends, within an hour), or create a larger network',
    });
  }
  return { ...nic, network: network.name, address };
}

function unexpiredLeases(networks: NetworkService, name: string): Lease[] {
  const now = Date.now();
  return networks.leases(name).filter((l) => l.expires === undefined || l.expires.getTime() > now);
}
