/**
 * Which NICs on managed networks can follow an instance to another host: the one place that decides it, for live
 * and offline moves alike (the source asks before anything moves; the target answers for its own networks).
 *
 * A NIC on a bridged network moves when the target has a network of the same name bridged to a bridge of the same
 * name (the operator's promise that both bridges are one L2 segment): the guest keeps its MAC and its addresses,
 * which are not virtnode's. A NAT or isolated network of one host (its subnet, DHCP leases, DNS and NAT live on
 * that host) keeps its NICs there; one defined for the whole cluster is one L2 over VXLAN on every host, with one
 * DHCP service, so its NICs move with their MAC and address to any host (each realizes it).
 */
import { USER_NETWORK } from '../instances/model.ts';
import { VirtnodeError } from '../lib/errors.ts';
import type { Network, NetworkMode } from './model.ts';

/** What the target needs to know of a NIC's network on the source (carried in the move's steps). */
export interface MovingNic {
  index: number;
  network: string;
  mode: NetworkMode;
  bridge: string;
  /** A network defined for the whole cluster (etcd), not only on the source host. */
  clusterWide?: boolean;
}

/** Why a NIC on `from` (a network of the source host) cannot leave its host at all, or undefined. */
export function staysOnItsHost(from: MovingNic): string | undefined {
  if (from.mode === 'bridge' || from.clusterWide === true) return undefined;
  return `NIC ${from.index} is on the ${from.mode} network ${from.network}, whose addresses, DHCP and ${from.mode === 'nat' ? 'NAT' : 'segment'} belong to this host; only NICs on bridged networks and on networks of the whole cluster move (\`network create NAME --bridge BR\`, or create it while in a cluster)`;
}

/**
 * Why the NIC `from` cannot move to `host`, whose network of the same name is `there` (undefined: none), or
 * undefined when it can.
 */
export function nicMoveRefusal(
  from: MovingNic,
  there: Pick<Network, 'mode' | 'bridge' | 'cluster'> | undefined,
  host: string,
  hasBridge: (bridge: string) => boolean = () => true,
): string | undefined {
  const stays = staysOnItsHost(from);
  if (stays !== undefined) return stays;
  if (from.clusterWide === true && from.mode !== 'bridge') {
    // The same definition on every host: same mode and bridge; a local network of that name there would hide it.
    if (there?.cluster === undefined || there.mode !== from.mode || there.bridge !== from.bridge) {
      return `NIC ${from.index} is on the cluster network ${from.network}, which host ${host} does not have as the cluster's (${there === undefined ? 'none of that name' : 'a network of its own by that name'})`;
    }
    return undefined;
  }
  if (there === undefined) return `NIC ${from.index} is on network ${from.network}, which host ${host} does not have (create it there: \`network create ${from.network} --bridge ${from.bridge}\`)`;
  if (there.mode !== from.mode || there.bridge !== from.bridge) {
    const theirs = there.mode === 'bridge' ? `bridged to ${there.bridge}` : there.mode === 'nat' ? 'a NAT network' : 'an isolated network';
    return `NIC ${from.index} is on network ${from.network}, bridged to ${from.bridge}; on host ${host} that network is ${theirs}`;
  }
  // A bridged network is the administrator's bridge: defined for the whole cluster, it may still be missing here.
  if (!hasBridge(from.bridge)) return `NIC ${from.index} is on network ${from.network}, bridged to ${from.bridge}, which does not exist on host ${host}`;
  return undefined;
}

/** The NICs of an instance on managed networks as the target must know them (`network` resolves a name here). */
export function movingNics(nics: ReadonlyArray<{ index: number; network: string }>, network: (name: string) => Network): MovingNic[] {
  return nics.filter((n) => n.network !== USER_NETWORK).map((n) => {
    const net = network(n.network);
    return { index: n.index, network: n.network, mode: net.mode, bridge: net.bridge, ...(net.cluster === undefined ? {} : { clusterWide: true }) };
  });
}

function refused(reasons: string[], hint: string): void {
  if (reasons.length === 0) return;
  throw new VirtnodeError('HOST_UNSUPPORTED', `nics: ${reasons.join('; ')}`, { field: 'nics', hint });
}

/** The source's check before anything moves: every NIC's network can leave this host. */
export function checkNicsLeave(nics: readonly MovingNic[]): void {
  refused(nics.map(staysOnItsHost).filter((r) => r !== undefined), 'detach the NIC (`nic detach`) or move it onto a bridged or cluster-wide network first');
}

/**
 * The target's check before it makes anything: each NIC finds its network here (`network` looks one up by name),
 * and a bridged one its bridge (`hasBridge`: the bridges of this host).
 */
export function checkNicsArrive(nics: readonly MovingNic[], network: (name: string) => Network | undefined, host: string, hasBridge?: (bridge: string) => boolean): void {
  refused(
    nics.map((n) => nicMoveRefusal(n, network(n.network), host, hasBridge)).filter((r) => r !== undefined),
    `give ${host} the same bridged networks and their bridges (\`virtnode network ls\` on both hosts)`,
  );
}
