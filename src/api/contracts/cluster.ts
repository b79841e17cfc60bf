/** Several hosts as one (`virtnode cluster ...`, `/cluster`): forming, joining, listing and removing hosts. */
import Type, { type Static } from 'typebox';
import { endpoints } from '../endpoint.ts';
import { CheckedName, Closed, StringEnum } from '../schemas.ts';

const Labels = Type.Record(Type.String(), Type.String(), { description: 'labels placement can require (key=value)' });

export const ClusterHost = Closed({
  name: Type.String(),
  address: Type.String(),
  state: StringEnum(['online', 'offline', 'evacuated']),
  etcdMember: Type.Boolean(),
  labels: Labels,
  capacity: Type.Optional(
    Closed({
      cpus: Type.Integer(),
      memoryBytes: Type.Integer(),
      pools: Type.Array(Closed({ name: Type.String(), capacityBytes: Type.Integer(), availableBytes: Type.Integer() })),
      accelerator: StringEnum(['kvm', 'tcg']),
      qemuVersion: Type.Optional(Type.String()),
      cpuFlags: Type.Array(Type.String()),
    }),
  ),
  use: Type.Optional(Closed({ instances: Type.Integer(), running: Type.Integer(), cpus: Type.Integer(), memoryBytes: Type.Integer() }, { description: 'sums over running instances' })),
  updatedAt: Type.Optional(Type.String({ description: 'when the host last published itself (absent while offline)' })),
});

export const ClusterStatus = Closed({
  enabled: Type.Boolean({ description: 'false: a standalone host' }),
  clusterId: Type.Optional(Type.String()),
  host: Type.Optional(Type.String({ description: 'the answering host' })),
  fenced: Type.Optional(
    Closed(
      { since: Type.String(), reason: Type.String() },
      { description: 'the answering host lost its cluster lease: it takes no new work until it holds one again (hosts and etcd are then empty when etcd does not answer)' },
    ),
  ),
  hosts: Type.Array(ClusterHost),
  etcd: Closed({
    external: Type.Boolean(),
    leader: Type.Optional(Type.String()),
    members: Type.Array(Closed({ name: Type.String(), id: Type.String(), clientUrls: Type.Array(Type.String()), leader: Type.Boolean() })),
  }),
});
export type ClusterStatusView = Static<typeof ClusterStatus>;

const EtcdFiles = {
  etcdCa: Type.Optional(Type.String({ description: 'an existing etcd: its CA (PEM file on the daemon\'s host)' })),
  etcdCert: Type.Optional(Type.String()),
  etcdKey: Type.Optional(Type.String()),
};

export const ClusterInitBody = Closed({
  host: Type.Optional(CheckedName),
  address: Type.String({ description: 'this host\'s IP address on the cluster network' }),
  apiPort: Type.Optional(Type.Integer()),
  labels: Type.Optional(Labels),
  etcd: Type.Optional(Type.Array(Type.String(), { description: 'client URLs of an existing etcd (virtnode then runs none)' })),
  ...EtcdFiles,
});

export const ClusterJoinBody = Closed({
  token: Type.String(),
  address: Type.String(),
  apiPort: Type.Optional(Type.Integer()),
  labels: Type.Optional(Labels),
  ...EtcdFiles,
});

export const JoinTokenIssued = Closed({ host: Type.String(), token: Type.String(), expiresAt: Type.String() });

export const clusterEndpoints = endpoints({
  status: { method: 'GET', path: '/cluster', summary: 'the cluster: hosts, their state, capacity and use, the etcd members and leader', response: ClusterStatus },
  init: { method: 'POST', path: '/cluster/init', summary: 'form a cluster with this host as its first member', body: ClusterInitBody, response: ClusterStatus },
  add: { method: 'POST', path: '/cluster/hosts', summary: 'a single-use join token for a new host', body: Closed({ host: CheckedName }), response: JoinTokenIssued, status: 201 },
  join: { method: 'POST', path: '/cluster/join', summary: 'join a cluster with a token from `cluster add`', body: ClusterJoinBody, response: ClusterStatus },
  remove: {
    method: 'DELETE',
    path: '/cluster/hosts/:host',
    summary: 'forget a host (and its etcd member); --force for one that is online or gone for good',
    params: Closed({ host: CheckedName }),
    query: Closed({ force: Type.Optional(Type.Boolean()) }),
    response: ClusterStatus,
  },
});
