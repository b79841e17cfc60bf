import { run } from '../exec/run.ts';
import { isVirtnodeError } from '../lib/errors.ts';
import type { Network } from './model.ts';
import { nftTableName } from './names.ts';
import { type ForwardDropChain, findForwardDropChains, renderRuleset } from './nft.ts';

const NFT_TIMEOUT_MS = 10_000;

export async function applyRuleset(network: Network): Promise<void> {
  await run(['nft', '-f', '-'], { input: renderRuleset(network), timeoutMs: NFT_TIMEOUT_MS });
}

export async function tableExists(network: Network): Promise<boolean> {
  const { code } = await run(['nft', 'list', 'table', 'ip', nftTableName(network.id)], { timeoutMs: NFT_TIMEOUT_MS, okCodes: [0, 1] });
  return code === 0;
}

export async function deleteTable(network: Network): Promise<void> {
  if (!(await tableExists(network))) return;
  try {
    await run(['nft', 'delete', 'table', 'ip', nftTableName(network.id)], { timeoutMs: NFT_TIMEOUT_MS });
  } catch (e) {
    if (isVirtnodeError(e) && !(await tableExists(network))) return;
    throw e;
  }
}

/** FORWARD chains with a drop policy in tables that are not virtnode's (e.g. Docker's). */
export async function foreignForwardDrops(): Promise<ForwardDropChain[]> {
  const { stdout } = await run(['nft', '-j', 'list', 'ruleset'], { timeoutMs: NFT_TIMEOUT_MS });
  return findForwardDropChains(stdout === '' ? '{}' : stdout, (t) => t.startsWith('virtnode_'));
}
