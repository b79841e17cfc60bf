import { run } from '../exec/run.ts';
import { isVirtnodeError } from '../lib/errors.ts';

const IP_TIMEOUT_MS = 10_000;

function ip(args: string[]): Promise<{ stdout: string }> {
  return run(['ip', ...args], { timeoutMs: IP_TIMEOUT_MS });
}

export interface Link {
  ifname: string;
  alias: string | undefined;
  master: string | undefined;
  /** `bridge`, `tun`, `veth`, ... (undefined for plain devices). */
  kind: string | undefined;
}

/**
 * The links of the current network namespace. Read through `ip`, never /sys/class/net: sysfs shows the namespace
 * it was mounted in, which is not ours inside `unshare -n` or `ip netns exec` without a remount.
 */
export async function listLinks(): Promise<Link[]> {
  const { stdout } = await ip(['-json', '-details', 'link', 'show']);
  const entries = JSON.parse(stdout === '' ? '[]' : stdout) as Array<{ ifname: string; ifalias?: string; master?: string; linkinfo?: { info_kind?: string } }>;
  return entries.map((e) => ({ ifname: e.ifname, alias: e.ifalias, master: e.master, kind: e.linkinfo?.info_kind }));
}

export async function linkExists(name: string): Promise<boolean> {
  return (await listLinks()).some((l) => l.ifname === name);
}

export async function bridgeExists(name: string): Promise<boolean> {
  return (await listLinks()).some((l) => l.ifname === name && l.kind === 'bridge');
}

/**
 * A bridge with the gateway address, up. Idempotent: an existing bridge is kept and completed. Without an address:
 * a cluster network's bridge on a host other than its DHCP host (the gateway is that host's).
 */
export async function ensureBridge(name: string, alias: string, addressCidr: string | undefined): Promise<void> {
  if (!(await bridgeExists(name))) {
    await ip(['link', 'add', 'name', name, 'type', 'bridge', 'stp_state', '0']);
  }
  await ip(['link', 'set', 'dev', name, 'alias', alias]);
  if (addressCidr !== undefined) await ip(['addr', 'replace', addressCidr, 'dev', name]);
  await ip(['link', 'set', 'dev', name, 'up']);
}

/** Removes an IPv4 address (`A.B.C.D/N`) from a link, if the link exists and has it. */
export async function removeAddress(dev: string, addressCidr: string): Promise<void> {
  if (!(await linkExists(dev))) return;
  const { stdout } = await ip(['-json', '-4', 'addr', 'show', 'dev', dev]);
  const [entry] = JSON.parse(stdout === '' ? '[]' : stdout) as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
  if (!(entry?.addr_info ?? []).some((a) => `${a.local}/${a.prefixlen}` === addressCidr)) return;
  await ip(['addr', 'del', addressCidr, 'dev', dev]);
}

/** Whether an existing tap was made multi-queue (undefined: no such tap). */
async function tapMultiQueue(name: string): Promise<boolean | undefined> {
  if (!(await linkExists(name))) return undefined;
  const { stdout } = await ip(['-json', '-details', 'link', 'show', 'dev', name]);
  const [entry] = JSON.parse(stdout) as Array<{ linkinfo?: { info_data?: { multi_queue?: boolean } } }>;
  return entry?.linkinfo?.info_data?.multi_queue === true;
}

/**
 * A persistent tap enslaved to `bridge`, up; QEMU opens it by name (`-netdev tap,ifname=...`). A multi-queue NIC
 * needs a multi-queue tap and a single-queue NIC a plain one (the kernel refuses a mismatch), so a stale tap of
 * the other kind is made again.
 */
export async function ensureTap(name: string, alias: string, bridge: string, options: { multiQueue?: boolean } = {}): Promise<void> {
  const multiQueue = options.multiQueue === true;
  const existing = await tapMultiQueue(name);
  if (existing !== undefined && existing !== multiQueue) await deleteLink(name);
  if (existing !== multiQueue) await ip(['tuntap', 'add', 'dev', name, 'mode', 'tap', ...(multiQueue ? ['multi_queue'] : [])]);
  await ip(['link', 'set', 'dev', name, 'alias', alias]);
  await ip(['link', 'set', 'dev', name, 'master', bridge]);
  await ip(['link', 'set', 'dev', name, 'up']);
}

/**
 * A veth pair for a system container: `name` stays on the host, enslaved to `bridge`; `peer` (with the NIC's MAC)
 * is moved into the container by LXC (`lxc.net.N.type = phys`), which works inside any network namespace, and
 * comes back when the container stops. Deleting either end deletes both.
 */
export async function ensureVeth(name: string, peer: string, mac: string, alias: string, bridge: string): Promise<void> {
  const links = await listLinks();
  if (!links.some((l) => l.ifname === name) || !links.some((l) => l.ifname === peer)) {
    await deleteLink(name);
    await deleteLink(peer);
    await ip(['link', 'add', 'name', name, 'type', 'veth', 'peer', 'name', peer, 'address', mac]);
  }
  await ip(['link', 'set', 'dev', name, 'alias', alias]);
  await ip(['link', 'set', 'dev', peer, 'alias', alias]);
  await ip(['link', 'set', 'dev', name, 'master', bridge]);
  await ip(['link', 'set', 'dev', name, 'up']);
}

/** Removes a link if it exists (taps, virtnode's own bridges); a link already gone is fine. */
export async function deleteLink(name: string): Promise<void> {
  if (!(await linkExists(name))) return;
  try {
    await ip(['link', 'del', 'dev', name]);
  } catch (e) {
    if (isVirtnodeError(e) && !(await linkExists(name))) return;
    throw e;
  }
}
