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

const HostParams = Closed({ host: CheckedName });

/** What became of one instance in an evacuation, a restore or a rebalance. */
export const InstanceMoveReport = Closed({
  name: Type.String(),
  from: Type.String({ description: 'the host it ran on' }),
  to: Type.Optional(Type.String({ description: 'where it was to go (moved: where it runs now)' })),
  result: StringEnum(['moved', 'stays', 'failed', 'planned']),
  reason: Type.Optional(Type.String({ description: 'why it stays or failed; for a rebalance, why the move was chosen' })),
  downtimeMs: Type.Optional(Type.Integer()),
});

export const EvacuationResult = Closed({
  host: Type.String(),
  evacuated: Type.Boolean({ description: 'whether the host is out of placement now' }),
  instances: Type.Array(InstanceMoveReport),
});

export const RebalanceBody = Closed({
  dryRun: Type.Optional(Type.Boolean({ description: 'only say what would move, change nothing' })),
  threshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'percent: hosts whose loads differ by no more than this are balanced (default 10)' })),
});

export const RebalanceResult = Closed({
  dryRun: Type.Boolean(),
  thresholdPercent: Type.Integer(),
  spreadBeforePercent: Type.Number({ description: 'the busiest host\'s load minus the idlest\'s (load: the larger of claimed CPUs and memory over what the host may hold)' }),
  spreadAfterPercent: Type.Number({ description: 'the same once the planned moves are made' }),
  balanced: Type.Boolean({ description: 'within the threshold already: nothing moves' }),
  note: Type.String(),
  hosts: Type.Array(Closed({ name: Type.String(), cpuPercent: Type.Number(), memoryPercent: Type.Number(), loadPercent: Type.Number() })),
  moves: Type.Array(InstanceMoveReport),
});

export const clusterEndpoints = endpoints({
  status: { method: 'GET', path: '/cluster', summary: 'the cluster: hosts, their state, capacity and use, the etcd members and leader', response: ClusterStatus },
  init: { method: 'POST', path: '/cluster/init', summary: 'form a cluster with this host as its first member', body: ClusterInitBody, response: ClusterStatus },
  add: { method: 'POST', path: '/cluster/hosts', summary: 'a single-use join token for a new host', body: Closed({ host: CheckedName }), response: JoinTokenIssued, status: 201 },
  join: { method: 'POST', path: '/cluster/join', summary: 'join a cluster with a token from `cluster add`', body: ClusterJoinBody, response: ClusterStatus },
  remove: {
    method: 'DELETE',
    path: '/cluster/hosts/:host',
    summary: 'forget a host (and its etcd member); --force for one that is online or gone for good',
    params: HostParams,
    query: Closed({ force: Type.Optional(Type.Boolean()) }),
    response: ClusterStatus,
  },
  recover: {
    method: 'POST',
    path: '/cluster/recover',
    summary: "quorum-loss recovery on the last surviving etcd member's host: its member becomes a one-member cluster on its own data (--force-new-cluster); refused while etcd has its quorum",
    response: ClusterStatus,
  },
  evacuate: {
    method: 'POST',
    path: '/cluster/hosts/:host/evacuate',
    summary: 'take a host out of placement and move its running instances live to hosts the scheduler picks (an operation; result: per instance, where it went or why not)',
    params: HostParams,
    response: EvacuationResult,
    operation: true,
  },
  restore: {
    method: 'POST',
    path: '/cluster/hosts/:host/restore',
    summary: 'put an evacuated host back into placement and move the instances its evacuation moved away back to it (an operation)',
    params: HostParams,
    response: EvacuationResult,
    operation: true,
  },
  rebalance: {
    method: 'POST',
    path: '/cluster/rebalance',
    summary: 'even out CPU and memory use across the online hosts by moving running instances live; dryRun: the plan only (an operation)',
    body: RebalanceBody,
    bodyOptional: true,
    response: RebalanceResult,
    operation: true,
  },
});
