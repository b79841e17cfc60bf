import { writeFileSync } from 'node:fs';
import { run } from '../exec/run.ts';
import { isVirtnodeError } from '../lib/errors.ts';

/**
 * Port forwards to an instance's address on a managed network (an instance without a user-mode NIC, e.g. a
 * container): DNAT in the instance's own nftables table (`ip virtnode_pf_<uuid>`), for packets from outside
 * (prerouting) and from the host itself (output), masqueraded when they come from the host's loopback. Replaced
 * as one transaction; deleted when the instance stops. No process to keep alive or to leave behind.
 */
export interface NftForward {
  protocol: 'tcp' | 'udp';
  hostAddress: string;
  hostPort: number;
  guestAddress: string;
  guestPort: number;
}

const NFT_TIMEOUT_MS = 10_000;

export function portForwardTable(instanceUuid: string): string {
  return `virtnode_pf_${instanceUuid.replace(/-/g, '').slice(0, 16)}`;
}

export function renderPortForwards(table: string, forwards: NftForward[]): string {
  const rules = forwards.map((f) => {
    const match = f.hostAddress === '0.0.0.0' ? 'fib daddr type local' : `ip daddr ${f.hostAddress}`;
    return `    ${match} ${f.protocol} dport ${f.hostPort} dnat to ${f.guestAddress}:${f.guestPort}`;
  });
  const guests = [...new Set(forwards.map((f) => f.guestAddress))];
  return [
    `add table ip ${table}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...rules,
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    ...rules,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...guests.map((g) => `    ip saddr 127.0.0.0/8 ip daddr ${g} masquerade`),
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Applies the forwards (none: the table goes); `bridges` may then carry loopback-sourced packets (route_localnet). */
export async function applyPortForwards(table: string, forwards: NftForward[], bridges: string[]): Promise<void> {
  if (forwards.length === 0) return deletePortForwards(table);
  if (forwards.some((f) => f.hostAddress.startsWith('127.'))) {
    for (const bridge of bridges) writeFileSync(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '1');
  }
  await run(['nft', '-f', '-'], { input: renderPortForwards(table, forwards), timeoutMs: NFT_TIMEOUT_MS });
}

export async function deletePortForwards(table: string): Promise<void> {
  const { code } = await run(['nft', 'list', 'table', 'ip', table], { timeoutMs: NFT_TIMEOUT_MS, okCodes: [0, 1] });
  if (code !== 0) return;
  try {
    await run(['nft', 'delete', 'table', 'ip', table], { timeoutMs: NFT_TIMEOUT_MS });
  } catch (e) {
    if (!isVirtnodeError(e)) throw e; // gone meanwhile: fine
  }
}
