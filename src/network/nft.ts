import type { Network } from './model.ts';
import { nftTableName } from './names.ts';

/**
 * The nftables ruleset of one nat or isolated network, in virtnode's own table (`ip virtnode_<id>`). Applied as one
 * transaction that first creates and deletes the table, so applying it again replaces it (idempotent) and no other
 * table is ever touched. Pure (golden-tested).
 */
export function renderRuleset(network: Network): string {
  const table = nftTableName(network.id);
  const br = JSON.stringify(network.bridge);
  const subnet = network.ipv4!.subnet;
  const head = [`add table ip ${table}`, `delete table ip ${table}`, `table ip ${table} {`];
  const forward =
    network.mode === 'nat'
      ? [
          '  chain forward {',
          '    type filter hook forward priority filter; policy accept;',
          `    iifname ${br} oifname ${br} accept`,
          `    iifname ${br} ip saddr ${subnet} accept`,
          `    oifname ${br} ip daddr ${subnet} ct state established,related accept`,
          // Port forwards of instances without a user-mode NIC (port-forward-nft.ts) are DNATed to their address.
          `    oifname ${br} ip daddr ${subnet} ct status dnat accept`,
          `    iifname ${br} drop`,
          `    oifname ${br} drop`,
          '  }',
          '  chain postrouting {',
          '    type nat hook postrouting priority srcnat; policy accept;',
          `    ip saddr ${subnet} ip daddr != ${subnet} masquerade`,
          '  }',
        ]
      : [
          '  chain forward {',
          '    type filter hook forward priority filter; policy accept;',
          `    iifname ${br} oifname ${br} accept`,
          `    iifname ${br} drop`,
          `    oifname ${br} drop`,
          '  }',
        ];
  return [...head, ...forward, '}', ''].join('\n');
}

export interface ForwardDropChain {
  family: string;
  table: string;
  chain: string;
}

/**
 * Base chains on the forward hook with a drop policy in tables that are not virtnode's (Docker's FORWARD DROP,
 * firewalld, ufw): each base chain decides on its own, so such a chain drops guest traffic whatever our table
 * accepts. Reads `nft -j list ruleset`.
 */
export function findForwardDropChains(rulesetJson: string, ownTables: (table: string) => boolean): ForwardDropChain[] {
  const parsed = JSON.parse(rulesetJson) as { nftables?: Array<Record<string, unknown>> };
  const found: ForwardDropChain[] = [];
  for (const entry of parsed.nftables ?? []) {
    const chain = entry['chain'] as { family?: string; table?: string; name?: string; hook?: string; policy?: string } | undefined;
    if (chain === undefined || chain.hook !== 'forward' || chain.policy !== 'drop') continue;
    if (ownTables(chain.table ?? '')) continue;
    found.push({ family: chain.family ?? '?', table: chain.table ?? '?', chain: chain.name ?? '?' });
  }
  return found;
}

export function forwardDropHint(chains: ForwardDropChain[], network: Network): string {
  const list = chains.map((c) => `${c.family} ${c.table} ${c.chain}`).join(', ');
  return (
    `the forward chain(s) ${list} drop forwarded packets by default (Docker does this), so guests on ${network.name} may not reach ` +
    `the outside; allow the bridge there, e.g. iptables -I DOCKER-USER -i ${network.bridge} -j ACCEPT and -o ${network.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`
  );
}
