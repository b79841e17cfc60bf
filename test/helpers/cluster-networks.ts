import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { NetworkView } from '../../src/api/schemas.ts';
import { dnsmasqReadableDir } from '../../src/network/dnsmasq-user.ts';
import { bridgeName, nftTableName } from '../../src/network/names.ts';
import { vxlanName } from '../../src/network/vxlan.ts';
import { type SimHost, ok } from './cluster-hosts.ts';
import { type SerialShell, UDHCPC_SCRIPT_SETUP } from './serial-shell.ts';

/** What cluster network tests look at on a simulated host: its links, flood lists, nftables tables, dnsmasqs. */

export const inNs = (h: SimHost, args: string[]): string => execFileSync('ip', ['netns', 'exec', h.netns, ...args], { encoding: 'utf8' });

export const linksOf = (h: SimHost): string[] => (JSON.parse(inNs(h, ['ip', '-json', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname);

/** The VXLAN device's flood list: the peers' addresses (all-zero FDB entries). */
export const floodOf = (h: SimHost, dev: string): string[] =>
  (JSON.parse(inNs(h, ['bridge', '-json', 'fdb', 'show', 'dev', dev])) as Array<{ mac: string; dst?: string }>)
    .filter((e) => e.mac === '00:00:00:00:00:00' && e.dst !== undefined)
    .map((e) => e.dst!)
    .sort();

export const nftTablesOf = (h: SimHost): string[] =>
  (JSON.parse(inNs(h, ['nft', '-j', 'list', 'tables']) || '{}') as { nftables?: Array<{ table?: { name: string } }> }).nftables?.flatMap((e) => (e.table === undefined ? [] : [e.table.name])) ?? [];

/** The pids of the dnsmasqs of the host's state directory. */
export const dnsmasqOf = (h: SimHost): string[] => {
  try {
    return execFileSync('pgrep', ['-f', '--', `--conf-file=${h.home}/`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

/** The IPv4 addresses (A.B.C.D/N) on a link of the host. */
export const addressesOn = (h: SimHost, dev: string): string[] =>
  (JSON.parse(inNs(h, ['ip', '-json', '-4', 'addr', 'show', 'dev', dev])) as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>).flatMap((e) => (e.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));

export const networksOn = async (h: SimHost): Promise<NetworkView[]> => JSON.parse(await ok(h, ['network', 'ls', '--format', 'json'])) as NetworkView[];

/** What a network left on a host: its links, its nft table, a dnsmasq, its dnsmasq-readable directory. */
export function leftovers(h: SimHost, id: string): string[] {
  const out = linksOf(h).filter((l) => l === bridgeName(id) || l === vxlanName(id));
  if (nftTablesOf(h).includes(nftTableName(id))) out.push(`nft ${nftTableName(id)}`);
  out.push(...dnsmasqOf(h).map((p) => `dnsmasq ${p}`));
  if (existsSync(dnsmasqReadableDir(id))) out.push(dnsmasqReadableDir(id));
  return out;
}

/** The guest's interface with the MAC (eth0, eth1...), its DHCP client script set up. */
export async function guestDevice(shell: SerialShell, mac: string): Promise<string> {
  await shell.run(UDHCPC_SCRIPT_SETUP);
  const found = await shell.run(`for d in /sys/class/net/*; do grep -qi ${mac} $d/address && echo "IF=$(basename $d)"; done`);
  const dev = /IF=(eth\d+)/.exec(found.output)?.[1];
  if (dev === undefined) throw new Error(`no interface with MAC ${mac} in the guest: ${found.output}`);
  return dev;
}

/**
 * A DHCP exchange in the guest (udhcpc; `requested`: the address it asks for again, as a client renewing after a
 * restart does): the address it then has on the interface.
 */
export async function dhcpIn(shell: SerialShell, dev: string, options: { requested?: string } = {}): Promise<string | undefined> {
  const again = options.requested === undefined ? '' : `ip addr flush dev ${dev} && `;
  const ask = options.requested === undefined ? '' : ` -r ${options.requested}`;
  const dhcp = await shell.run(`${again}ip link set ${dev} up && udhcpc -i ${dev} -n -q -t 10 -T 3${ask} -s /tmp/udhcpc.sh`, 90_000);
  if (dhcp.status !== 0) throw new Error(`udhcpc failed: ${dhcp.output}`);
  return /inet (\d+\.\d+\.\d+\.\d+)\//.exec((await shell.run(`ip -4 addr show ${dev}`)).output)?.[1];
}
