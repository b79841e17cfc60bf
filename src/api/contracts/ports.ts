/** An instance's user-mode port forwards: `virtnode port ...`, `/instances/{name}/ports` in the REST API. */
import Type from 'typebox';
import { endpoints } from '../endpoint.ts';
import { AddPortBody, NameParams, PortForward, PortParams } from '../schemas.ts';

export const portEndpoints = endpoints({
  list: {
    method: 'GET',
    path: '/instances/:name/ports',
    summary: "an instance's user-mode port forwards, with the SSH forward virtnode made (owner: ssh)",
    params: NameParams,
    response: Type.Array(PortForward),
  },
  add: {
    method: 'POST',
    path: '/instances/:name/ports',
    summary: 'forward a host port to a guest port on the user-mode NIC (`ports`: HOST:GUEST[/tcp|udp]; bound to 127.0.0.1 unless `address`)',
    params: NameParams,
    body: AddPortBody,
    response: PortForward,
    status: 201,
  },
  remove: {
    method: 'DELETE',
    path: '/instances/:name/ports/:port',
    summary: 'stop forwarding a host port (`port`: HOST[/tcp|udp]; URL-encode the slash)',
    params: PortParams,
    response: PortForward,
  },
});
