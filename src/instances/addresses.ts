import { existsSync } from 'node:fs';
import { GuestAgent } from '../qmp/guest-agent.ts';
import { agentPortOpen } from './agent-port.ts';
import type { Instance } from './model.ts';
import { USER_NETWORK } from './model.ts';
import { runtimePaths } from './runtime.ts';
import type { InstanceService } from './service.ts';

export interface NicAddresses {
  index: number;
  mac: string;
  network: string;
  /** The reserved address (nat/isolated networks), `static` when it came from --ip. */
  reserved?: string;
  staticAddress?: boolean;
  /** What dnsmasq handed out to this MAC. */
  lease?: string;
  /** What the guest agent reports on the interface with this MAC. */
  guest?: string[];
}

const AGENT_TIMEOUT_MS = 1_500;

/**
 * Addresses of each NIC from the reservation and dnsmasq's leases; with `agent`, also from the guest agent.
 * `leaseMemo` (one Map shared by the calls of one list) reads each network's leases once, not once per instance.
 */
export async function nicAddresses(
  service: InstanceService,
  instance: Instance,
  options: { agent?: boolean; leaseMemo?: Map<string, ReadonlyArray<{ mac: string; address: string }>> } = {},
): Promise<NicAddresses[]> {
  const leases = new Map<string, string>();
  for (const name of new Set(instance.nics.map((n) => n.network))) {
    if (name === USER_NETWORK) continue;
    let known = options.leaseMemo?.get(name);
    if (known === undefined) {
      known = service.networks.repo.get(name)?.ipv4 === undefined ? [] : service.networks.leases(name);
      options.leaseMemo?.set(name, known);
    }
    for (const lease of known) leases.set(lease.mac, lease.address);
  }
  const fromAgent = options.agent && (instance.state === 'running' || instance.state === 'paused') ? await agentAddresses(service, instance) : new Map<string, string[]>();
  return instance.nics.map((n) => ({
    index: n.index,
    mac: n.mac,
    network: n.network,
    ...(n.address === undefined ? {} : { reserved: n.address, staticAddress: n.staticAddress ?? false }),
    ...(leases.has(n.mac) ? { lease: leases.get(n.mac)! } : {}),
    ...(fromAgent.has(n.mac) ? { guest: fromAgent.get(n.mac)! } : {}),
  }));
}

async function agentAddresses(service: InstanceService, instance: Instance): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const paths = runtimePaths(service.paths.instanceDir(instance.name));
  const socket = paths.guestAgent;
  if (!existsSync(socket)) return out;
  if ((await agentPortOpen(paths.qmpQuery, AGENT_TIMEOUT_MS)) === false) return out; // no agent running in the guest
  let agent: GuestAgent | undefined;
  try {
    agent = await GuestAgent.connect(socket, { timeoutMs: AGENT_TIMEOUT_MS });
    for (const i of await agent.networkGetInterfaces({ timeoutMs: AGENT_TIMEOUT_MS })) {
      if (i.hardwareAddress === undefined) continue;
      out.set(i.hardwareAddress.toLowerCase(), i.ipAddresses.filter((a) => a.type === 'ipv4').map((a) => `${a.address}/${a.prefix}`));
    }
  } catch {
    /* no agent in this guest, or not up yet */
  } finally {
    agent?.close();
  }
  return out;
}
