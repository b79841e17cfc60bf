/** An instance's NICs: `virtnode nic ...`, `/instances/{name}/nics` in the REST API. */
import Type from 'typebox';
import { endpoints } from '../endpoint.ts';
import { AttachNicBody, InstanceNic, NameParams, NicParams } from '../schemas.ts';

export const nicEndpoints = endpoints({
  list: {
    method: 'GET',
    path: '/instances/:name/nics',
    summary: "an instance's NICs with their addresses (reservation, DHCP lease, guest agent)",
    params: NameParams,
    response: Type.Array(InstanceNic),
  },
  attach: {
    method: 'POST',
    path: '/instances/:name/nics',
    summary: 'add a NIC on a managed network or user (hot-plugged when the instance runs; `ip`: a static address on a nat/isolated network)',
    params: NameParams,
    body: AttachNicBody,
    response: InstanceNic,
    status: 201,
  },
  detach: {
    method: 'DELETE',
    path: '/instances/:name/nics/:nic',
    summary: 'remove a NIC by MAC or index (live: waits until the guest released it)',
    params: NicParams,
    response: InstanceNic,
  },
});
