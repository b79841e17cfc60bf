import { run } from '../exec/run.ts';
import { linkExists } from './links.ts';

/**
 * The VXLAN side of a cluster-wide network: one device per network and host, enslaved to the network's bridge,
 * unicast with head-end replication: no multicast group and no learning, but one all-zero FDB entry per peer
 * host, so broadcasts (DHCP, ARP) and unknown unicast go to each peer. The bridge learns guests' MACs on it.
 */

const TIMEOUT_MS = 10_000;
export const VXLAN_PORT = 4789;
const FLOOD_MAC = '00:00:00:00:00:00';

/** The VXLAN device of a network, from its host-wide id like the bridge (vnb...). */
export function vxlanName(networkId: string): string {
  return `vnx${networkId}`;
}

/** The device up on `bridge`, sending from `local` (this host's cluster address). Idempotent. */
export async function ensureVxlan(name: string, vni: number, local: string, bridge: string, alias: string): Promise<void> {
  if (!(await linkExists(name))) {
    await run(['ip', 'link', 'add', name, 'type', 'vxlan', 'id', String(vni), 'dstport', String(VXLAN_PORT), 'local', local, 'nolearning'], { timeoutMs: TIMEOUT_MS });
  }
  await run(['ip', 'link', 'set', 'dev', name, 'alias', alias], { timeoutMs: TIMEOUT_MS });
  await run(['ip', 'link', 'set', 'dev', name, 'master', bridge], { timeoutMs: TIMEOUT_MS });
  await run(['ip', 'link', 'set', 'dev', name, 'up'], { timeoutMs: TIMEOUT_MS });
}

/** The peers the device floods to now (its all-zero FDB entries). */
export async function floodPeers(name: string): Promise<string[]> {
  const { stdout } = await run(['bridge', '-json', 'fdb', 'show', 'dev', name], { timeoutMs: TIMEOUT_MS });
  const entries = JSON.parse(stdout === '' ? '[]' : stdout) as Array<{ mac: string; dst?: string }>;
  return entries.filter((e) => e.mac === FLOOD_MAC && e.dst !== undefined).map((e) => e.dst!).sort();
}

/** Makes the device flood to exactly `peers` (hosts that joined get an entry, hosts that left lose theirs). */
export async function setFloodPeers(name: string, peers: readonly string[]): Promise<void> {
  const now = new Set(await floodPeers(name));
  const wanted = new Set(peers);
  for (const p of wanted) if (!now.has(p)) await run(['bridge', 'fdb', 'append', FLOOD_MAC, 'dev', name, 'dst', p], { timeoutMs: TIMEOUT_MS });
  for (const p of now) if (!wanted.has(p)) await run(['bridge', 'fdb', 'del', FLOOD_MAC, 'dev', name, 'dst', p], { timeoutMs: TIMEOUT_MS });
}
