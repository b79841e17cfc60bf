/** Managed networks: `virtnode network ...`, `/networks` in the REST API. */
import Type from 'typebox';
import { endpoints } from '../endpoint.ts';
import { CreateNetworkBody, NameParams, Network, NetworkLease } from '../schemas.ts';
import { Deleted } from './instances.ts';

export const networkEndpoints = endpoints({
  list: { method: 'GET', path: '/networks', summary: 'managed networks, each with the instances that have a NIC on it', response: Type.Array(Network) },
  get: {
    method: 'GET',
    path: '/networks/:name',
    summary: 'one network, with what runs for it on the host (bridge, dnsmasq, nftables) and its instances',
    params: NameParams,
    response: Network,
  },
  create: {
    method: 'POST',
    path: '/networks',
    summary: 'create a network (`virtnode network create`); warnings come back in the view',
    body: CreateNetworkBody,
    response: Network,
    status: 201,
  },
  leases: {
    method: 'GET',
    path: '/networks/:name/leases',
    summary: "the network's DHCP leases, with the instance each belongs to (nat and isolated networks)",
    params: NameParams,
    response: Type.Array(NetworkLease),
  },
  delete: {
    method: 'DELETE',
    path: '/networks/:name',
    summary: 'remove a network and everything of it on the host (refused while instances use it)',
    params: NameParams,
    response: Deleted,
  },
});
