import { createHash, randomBytes } from 'node:crypto';

/**
 * Host-wide names (bridges, taps, nftables tables) live in one namespace shared by every state directory on the
 * host, so they come from ids that are unique per network or instance, never from user-chosen names.
 */

/** A short random id stored with each network. */
export function newNetworkId(): string {
  return randomBytes(4).toString('hex');
}

export function bridgeName(networkId: string): string {
  return `vnb${networkId}`;
}

export function nftTableName(networkId: string): string {
  return `virtnode_${networkId}`;
}

/** A tap per NIC, from the instance's UUID (unique host-wide) and the NIC index; 13 characters. */
export function tapName(instanceUuid: string, nicIndex: number): string {
  return `vnt${createHash('sha256').update(`${instanceUuid}/${nicIndex}`).digest('hex').slice(0, 10)}`;
}

/** The container end of a NIC's veth pair (its host end has the tap's name); moved into the container by LXC. */
export function vethPeerName(instanceUuid: string, nicIndex: number): string {
  return `vnp${tapName(instanceUuid, nicIndex).slice(3)}`;
}

/** Marks links virtnode made (ip link alias), so reconcile finds its own taps and bridges and nothing else. */
export function homeTag(stateRoot: string): string {
  return `virtnode:${createHash('sha256').update(stateRoot).digest('hex').slice(0, 12)}`;
}
