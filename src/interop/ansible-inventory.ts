/**
 * Ansible's dynamic-inventory JSON (`virtnode inventory --list`) from the instance views: one host per instance
 * whose SSH address is known (launched and running), grouped by network, image, virtnode host and state, with
 * host vars that make `ansible` connect through virtnode's forwarded SSH port with its key and its known_hosts
 * under strict host key checking. Instances have no labels yet, so there are no label groups. Pure.
 */
import type { InstanceView } from '../api/schemas.ts';

export interface HostVars {
  ansible_host: string;
  ansible_port: number;
  ansible_user: string;
  ansible_ssh_private_key_file?: string;
  ansible_ssh_common_args: string;
  virtnode_name: string;
  virtnode_uuid: string;
  virtnode_state: string;
  virtnode_image?: string;
  virtnode_networks: string[];
  /** Addresses of NICs on managed networks (reachable from the host), by network. */
  virtnode_addresses: Record<string, string>;
}

export interface AnsibleGroup {
  hosts?: string[];
  children?: string[];
}

/** `_meta` carries every host's vars, so Ansible never calls `--host` per host. */
export type AnsibleInventory = Record<string, AnsibleGroup> & { _meta: { hostvars: Record<string, HostVars> } };

export interface InventoryOptions {
  /** This virtnode host's name (group `host_<name>`). */
  host: string;
  knownHosts: string;
  identityFile?: string;
}

/** Ansible group names are identifiers: anything else becomes `_` (ansible warns about other characters). */
export function groupName(prefix: string, value: string): string {
  return `${prefix}_${value.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
}

/** The ssh options every connection to an instance uses: virtnode's known_hosts, checked strictly. */
export function sshCommonArgs(knownHosts: string): string {
  // Ansible splits this string shell-style; a path with spaces would need quoting, and virtnode's never has any.
  return `-o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null`;
}

export function buildInventory(instances: readonly InstanceView[], options: InventoryOptions): AnsibleInventory {
  const hostvars: Record<string, HostVars> = {};
  const groups = new Map<string, Set<string>>();
  const add = (group: string, host: string) => {
    const set = groups.get(group) ?? new Set<string>();
    set.add(host);
    groups.set(group, set);
  };
  for (const i of [...instances].sort((a, b) => a.name.localeCompare(b.name))) {
    const address = i.ssh?.address;
    if (i.ssh === undefined || address === undefined || i.state !== 'running') continue;
    const [sshHost, port] = address.split(':');
    const networks = [...new Set(i.nics.map((n) => n.network))];
    const addresses: Record<string, string> = {};
    for (const n of i.nics) {
      const a = n.guestAddresses?.[0]?.split('/')[0] ?? n.lease ?? n.address;
      if (n.network !== 'user' && a !== undefined && addresses[n.network] === undefined) addresses[n.network] = a;
    }
    hostvars[i.name] = {
      ansible_host: sshHost!,
      ansible_port: Number(port),
      ansible_user: i.ssh.user,
      ...(options.identityFile === undefined ? {} : { ansible_ssh_private_key_file: options.identityFile }),
      ansible_ssh_common_args: sshCommonArgs(options.knownHosts),
      virtnode_name: i.name,
      virtnode_uuid: i.uuid,
      virtnode_state: i.state,
      ...(i.image === undefined ? {} : { virtnode_image: i.image.name }),
      virtnode_networks: networks,
      virtnode_addresses: addresses,
    };
    add('virtnode', i.name);
    for (const n of networks) add(groupName('network', n), i.name);
    if (i.image !== undefined) add(groupName('image', i.image.name), i.name);
    add(groupName('host', options.host), i.name);
    add(groupName('state', i.state), i.name);
  }
  const inventory: Record<string, unknown> = {
    _meta: { hostvars },
    all: { children: ['ungrouped', ...[...groups.keys()].sort()] },
    ungrouped: { hosts: [] },
  };
  for (const name of [...groups.keys()].sort()) inventory[name] = { hosts: [...groups.get(name)!] };
  return inventory as AnsibleInventory;
}
