import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { CreateNetworkBody, type CreateNetworkBodyType, NameParams, Network, NetworkLease, withErrors } from '../../api/schemas.ts';
import { networkLeaseView, networkView } from '../../api/views.ts';
import type { DaemonCore } from '../core.ts';

/** Managed networks (`virtnode network ...`): NAT or isolated bridges with DHCP and DNS, or an existing bridge. */
export async function networkRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const tags = ['networks'];
  const networks = () => core.instances.networks;

  const instancesOn = (name: string) => [...new Set(networks().instances.nicsOn(name).map((x) => x.instance))];

  app.get('/networks', { schema: { tags, summary: 'managed networks, each with the instances that have a NIC on it', response: withErrors({ 200: Type.Array(Network) }) } }, async () => {
    await core.instances.ensureReconciled();
    return networks()
      .list()
      .map((n) => networkView(n, undefined, instancesOn(n.name)));
  });

  app.get<{ Params: { name: string } }>(
    '/networks/:name',
    { schema: { tags, summary: 'one network, with what runs for it on the host (bridge, dnsmasq, nftables) and its instances', params: NameParams, response: withErrors({ 200: Network }) } },
    async (request) => {
      const n = networks().mustGet(request.params.name);
      return networkView(n, await networks().status(n));
    },
  );

  app.post<{ Body: CreateNetworkBodyType }>(
    '/networks',
    { schema: { tags, summary: 'create a network (`virtnode network create`); warnings come back in the view', body: CreateNetworkBody, response: withErrors({ 201: Network }) } },
    async (request, reply) => {
      await core.instances.ensureReconciled();
      const { network } = await networks().create(request.body);
      return reply.status(201).send(networkView(network, await networks().status(network)));
    },
  );

  app.get<{ Params: { name: string } }>(
    '/networks/:name/leases',
    { schema: { tags, summary: "the network's DHCP leases, with the instance each belongs to (nat and isolated networks)", params: NameParams, response: withErrors({ 200: Type.Array(NetworkLease) }) } },
    async (request) => {
      const byMac = new Map(networks().instances.nicsOn(request.params.name).map((n) => [n.mac, n.instance]));
      return networks()
        .leases(request.params.name)
        .map((l) => networkLeaseView(l, byMac.get(l.mac)));
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/networks/:name',
    {
      schema: {
        tags,
        summary: 'remove a network and everything of it on the host (refused while instances use it)',
        params: NameParams,
        response: withErrors({ 200: Type.Object({ name: Type.String(), deleted: Type.Boolean() }, { additionalProperties: false }) }),
      },
    },
    async (request) => {
      await networks().remove(request.params.name);
      return { name: request.params.name, deleted: true };
    },
  );
}
