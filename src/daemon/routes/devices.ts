import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import {
  AddPortBody,
  AttachNicBody,
  InstanceNic,
  NameParams,
  NicParams,
  PortForward,
  PortParams,
  withErrors,
} from '../../api/schemas.ts';
import { attachedNicView as nicView, portForwardView, portForwardViews } from '../../api/views.ts';
import { validateName } from '../../lib/ids.ts';
import type { DaemonCore } from '../core.ts';

type NameRequest = { Params: { name: string } };

/**
 * An instance's NICs and port forwards (`virtnode nic ...`, `port ...`): live through QMP when it runs, recorded
 * for the next start when it is stopped; each takes the instance lock. (Disks: src/app/storage.ts.)
 */
export async function deviceRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const done = <T>(value: T): T => {
    core.supervisor.poke();
    return value;
  };

  app.get<NameRequest>(
    '/instances/:name/nics',
    { schema: { tags: ['nics'], summary: "an instance's NICs with their addresses (reservation, DHCP lease, guest agent)", params: NameParams, response: withErrors({ 200: Type.Array(InstanceNic) }) } },
    async (request) => {
      const { nicAddresses } = await import('../../instances/addresses.ts');
      const instance = await core.instances.get(validateName('name', request.params.name));
      return nicAddresses(core.instances, instance, { agent: true });
    },
  );

  app.post<NameRequest & { Body: { network: string; ip?: string } }>(
    '/instances/:name/nics',
    {
      schema: {
        tags: ['nics'],
        summary: 'add a NIC on a managed network or user (hot-plugged when the instance runs; `ip`: a static address on a nat/isolated network)',
        params: NameParams,
        body: AttachNicBody,
        response: withErrors({ 201: InstanceNic }),
      },
    },
    async (request, reply) => {
      const { attachNic } = await import('../../instances/nics.ts');
      const name = validateName('name', request.params.name);
      const nic = await attachNic(core.instances, name, request.body.network, request.body.ip);
      return reply.status(201).send(done(nicView(nic)));
    },
  );

  app.delete<{ Params: { name: string; nic: string } }>(
    '/instances/:name/nics/:nic',
    { schema: { tags: ['nics'], summary: 'remove a NIC by MAC or index (live: waits until the guest released it)', params: NicParams, response: withErrors({ 200: InstanceNic }) } },
    async (request) => {
      const { detachNic } = await import('../../instances/nics.ts');
      const name = validateName('name', request.params.name);
      return done(nicView(await detachNic(core.instances, name, request.params.nic)));
    },
  );

  app.get<NameRequest>(
    '/instances/:name/ports',
    { schema: { tags: ['ports'], summary: "an instance's user-mode port forwards, with the SSH forward virtnode made (owner: ssh)", params: NameParams, response: withErrors({ 200: Type.Array(PortForward) }) } },
    async (request) => {
      const instance = await core.instances.get(validateName('name', request.params.name));
      return portForwardViews(instance);
    },
  );

  app.post<NameRequest & { Body: { ports: string; address?: string } }>(
    '/instances/:name/ports',
    {
      schema: {
        tags: ['ports'],
        summary: 'forward a host port to a guest port on the user-mode NIC (`ports`: HOST:GUEST[/tcp|udp]; bound to 127.0.0.1 unless `address`)',
        params: NameParams,
        body: AddPortBody,
        response: withErrors({ 201: PortForward }),
      },
    },
    async (request, reply) => {
      const { addPortForward } = await import('../../instances/port-forward.ts');
      const name = validateName('name', request.params.name);
      const forward = await addPortForward(core.instances, name, request.body.ports, request.body.address ?? '127.0.0.1');
      return reply.status(201).send(done(portForwardView(forward)));
    },
  );

  app.delete<{ Params: { name: string; port: string } }>(
    '/instances/:name/ports/:port',
    { schema: { tags: ['ports'], summary: 'stop forwarding a host port (`port`: HOST[/tcp|udp]; URL-encode the slash)', params: PortParams, response: withErrors({ 200: PortForward }) } },
    async (request) => {
      const { removePortForward } = await import('../../instances/port-forward.ts');
      const name = validateName('name', request.params.name);
      return done(portForwardView(await removePortForward(core.instances, name, request.params.port)));
    },
  );
}
