/**
 * Cluster-wide networks in the shared store. A definition is created if absent, with its VNI claimed in the same
 * transaction, so two hosts creating one name (or one VNI) at once: one wins. Creates of networks with a subnet
 * are serialized by one key every such create rewrites (guarded by its revision): each checks the subnets of the
 * definitions it read after that key, so two overlapping subnets created at once: one wins. Each host records its
 * NICs on a network under its own key, and each address under the network's address key, created only if absent:
 * two hosts never reserve one address, and the DHCP host reads every host's reservations from here. When a
 * network's DHCP host is offline (its lease expired), an online host takes the role over by rewriting the
 * definition, guarded by its revision and by the old host's live key being absent: one host wins.
 */
import { VirtnodeError } from '../lib/errors.ts';
import { overlaps, parseCidr } from '../network/ipv4.ts';
import { dhcpHostOf, type Network } from '../network/model.ts';
import type { NetworkSpan, SpanNic } from '../network/span.ts';
import type { Kv, KvGuard, KvWrite } from './kv.ts';
import { type HostRecord, KEYS } from './model.ts';

export const NETWORK_KEYS = {
  networks: '/virtnode/networks/',
  network: (name: string) => `/virtnode/networks/${name}`,
  vni: (vni: number) => `/virtnode/network-vnis/${vni}`,
  /** Rewritten by every create of a network with a subnet (the last one's name): its revision serializes them. */
  subnets: '/virtnode/network-subnets',
  nicsAll: '/virtnode/network-nics/',
  nics: (network: string) => `/virtnode/network-nics/${network}/`,
  nicsOf: (network: string, host: string) => `/virtnode/network-nics/${network}/${host}`,
  addresses: (network: string) => `/virtnode/network-addresses/${network}/`,
  address: (network: string, address: string) => `/virtnode/network-addresses/${network}/${address}`,
} as const;

interface AddressRecord {
  host: string;
  mac: string;
  hostname: string;
}

const ATTEMPTS = 5;

export class EtcdNetworks implements NetworkSpan {
  private readonly taken = new Map<string, Map<string, { owner: string; mac: string }>>();
  private readonly kv: () => Kv;
  private readonly me: () => { host: string; address: string } | undefined;
  private readonly fenced: () => boolean;

  /** `fenced`: whether this host lost its cluster lease (it then serves no network's DHCP). */
  constructor(kv: () => Kv, me: () => { host: string; address: string } | undefined, fenced: () => boolean = () => false) {
    this.kv = kv;
    this.me = me;
    this.fenced = fenced;
  }

  self(): { host: string; address: string } | undefined {
    return this.me();
  }

  holdsLease(): boolean {
    return !this.fenced();
  }

  private host(): string {
    const me = this.me();
    if (me === undefined) throw new VirtnodeError('INVALID_STATE', 'this host is not in a cluster');
    return me.host;
  }

  async definitions(): Promise<Network[]> {
    return (await this.kv().list(NETWORK_KEYS.networks)).entries.map((e) => JSON.parse(e.value) as Network);
  }

  async definition(name: string): Promise<Network | undefined> {
    const entry = await this.kv().get(NETWORK_KEYS.network(name));
    return entry === undefined ? undefined : (JSON.parse(entry.value) as Network);
  }

  async define(network: Network): Promise<void> {
    const kv = this.kv();
    const vni = network.cluster?.vni;
    const subnet = network.ipv4 === undefined ? undefined : parseCidr('subnet', network.ipv4.subnet);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      // The serial key is read before the definitions: a create that commits after this read changes its
      // revision, and this one's transaction fails (and checks again).
      const serial = subnet === undefined ? undefined : await kv.get(NETWORK_KEYS.subnets);
      const [defs, vniHolder] = await Promise.all([this.definitions(), vni === undefined ? undefined : kv.get(NETWORK_KEYS.vni(vni))]);
      const same = defs.find((d) => d.name === network.name);
      if (same !== undefined) {
        const by = same.cluster?.createdOn;
        throw new VirtnodeError('CONFLICT', `network ${network.name} already exists in the cluster${by === undefined ? '' : ` (created on host ${by})`}`, {
          field: 'name',
          hint: 'choose another name, or remove it first',
        });
      }
      if (vniHolder !== undefined) throw new VirtnodeError('CONFLICT', `vni: VXLAN ${vni} is network ${vniHolder.value}'s already`, { field: 'vni', hint: 'choose another, or leave --vni out to get a free one' });
      const other = subnet === undefined ? undefined : defs.find((d) => d.ipv4 !== undefined && overlaps(subnet, parseCidr('subnet', d.ipv4.subnet)));
      if (other !== undefined) {
        throw new VirtnodeError('CONFLICT', `--subnet: ${network.ipv4!.subnet} overlaps network ${other.name} (${other.ipv4!.subnet}${other.cluster === undefined ? '' : `, created on host ${other.cluster.createdOn}`})`, {
          field: '--subnet',
          hint: 'choose a subnet no other network of the cluster uses (see `virtnode network ls`)',
        });
      }
      const guards: KvGuard[] = [{ key: NETWORK_KEYS.network(network.name), modRevision: 0 }];
      const writes: KvWrite[] = [{ put: NETWORK_KEYS.network(network.name), value: JSON.stringify(network) }];
      if (vni !== undefined) {
        guards.push({ key: NETWORK_KEYS.vni(vni), modRevision: 0 });
        writes.push({ put: NETWORK_KEYS.vni(vni), value: network.name });
      }
      if (subnet !== undefined) {
        guards.push({ key: NETWORK_KEYS.subnets, modRevision: serial?.modRevision ?? 0 });
        writes.push({ put: NETWORK_KEYS.subnets, value: network.name });
      }
      if ((await kv.txn(guards, writes)).won) return;
      // Another create won meanwhile: the checks again, against what it made.
    }
    throw new VirtnodeError('CONFLICT', `network ${network.name}: the cluster's networks kept changing while it was being created: try again`, { field: 'name' });
  }

  async takeOverDhcp(name: string): Promise<Network | undefined> {
    const kv = this.kv();
    const me = this.host();
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const [entry, alive] = await Promise.all([kv.get(NETWORK_KEYS.network(name)), kv.list(KEYS.alives)]);
      if (entry === undefined) return undefined;
      const network = JSON.parse(entry.value) as Network;
      const online = new Set(alive.entries.map((e) => e.key.slice(KEYS.alives.length)));
      const holder = dhcpHostOf(network);
      if (network.cluster === undefined || holder === undefined || online.has(holder) || !online.has(me) || this.fenced()) return network;
      const taken: Network = { ...network, cluster: { ...network.cluster, dhcpHost: me } };
      // Only while the definition is the one read and the old DHCP host's live key is still gone.
      const guards: KvGuard[] = [
        { key: entry.key, modRevision: entry.modRevision },
        { key: KEYS.alive(holder), modRevision: 0 },
      ];
      if ((await kv.txn(guards, [{ put: entry.key, value: JSON.stringify(taken) }])).won) return taken;
    }
    return this.definition(name);
  }

  async undefine(network: Network): Promise<void> {
    const kv = this.kv();
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const entry = await kv.get(NETWORK_KEYS.network(network.name));
      if (entry === undefined || (JSON.parse(entry.value) as Network).id !== network.id) return;
      const [nics, addresses] = await Promise.all([kv.list(NETWORK_KEYS.nics(network.name)), kv.list(NETWORK_KEYS.addresses(network.name))]);
      const writes: KvWrite[] = [{ delete: entry.key }, ...[...nics.entries, ...addresses.entries].map((e) => ({ delete: e.key }))];
      if (network.cluster?.vni !== undefined) writes.push({ delete: NETWORK_KEYS.vni(network.cluster.vni) });
      if ((await kv.txn([{ key: entry.key, modRevision: entry.modRevision }], writes)).won) return;
    }
    throw new VirtnodeError('CONFLICT', `network ${network.name} kept changing while it was being removed: try again`, { field: 'name' });
  }

  async peers(): Promise<string[]> {
    const kv = this.kv();
    const me = this.host();
    const [hosts, alive] = await Promise.all([kv.list(KEYS.hosts), kv.list(KEYS.alives)]);
    const online = new Set(alive.entries.map((e) => e.key.slice(KEYS.alives.length)));
    return hosts.entries
      .map((e) => JSON.parse(e.value) as HostRecord)
      .filter((h) => h.name !== me && online.has(h.name))
      .map((h) => h.address)
      .sort();
  }

  async publish(network: Network, nics: SpanNic[]): Promise<SpanNic[]> {
    const kv = this.kv();
    const me = this.host();
    const name = network.name;
    const value = JSON.stringify([...nics].sort((a, b) => a.mac.localeCompare(b.mac)));
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const [mine, addresses] = await Promise.all([kv.get(NETWORK_KEYS.nicsOf(name, me)), kv.list(NETWORK_KEYS.addresses(name))]);
      const held = new Map(addresses.entries.map((e) => [e.key.slice(NETWORK_KEYS.addresses(name).length), { entry: e, record: JSON.parse(e.value) as AddressRecord }]));
      const guards: KvGuard[] = [];
      const writes: KvWrite[] = [];
      for (const nic of nics) {
        if (nic.address === undefined) continue;
        const h = held.get(nic.address);
        const record: AddressRecord = { host: me, mac: nic.mac, hostname: nic.hostname };
        // The same NIC (MAC and instance) recorded by another host: the instance moved here, and its address with it.
        const moved = h !== undefined && h.record.mac === nic.mac && h.record.hostname === nic.hostname;
        if (h !== undefined && h.record.host !== me && !moved) {
          throw new VirtnodeError('CONFLICT', `--ip: ${nic.address} is already taken on network ${name} by instance ${h.record.hostname} on host ${h.record.host}`, {
            field: '--ip',
            hint: 'choose another address, or leave --ip out to get a free one',
          });
        }
        if (h !== undefined && JSON.stringify(h.record) === JSON.stringify(record)) continue;
        guards.push({ key: NETWORK_KEYS.address(name, nic.address), modRevision: h?.entry.modRevision ?? 0 });
        writes.push({ put: NETWORK_KEYS.address(name, nic.address), value: JSON.stringify(record) });
      }
      for (const [address, h] of held) {
        if (h.record.host !== me || nics.some((n) => n.address === address)) continue;
        guards.push({ key: h.entry.key, modRevision: h.entry.modRevision });
        writes.push({ delete: h.entry.key });
      }
      if ((mine?.value ?? '[]') !== value) {
        guards.push({ key: NETWORK_KEYS.nicsOf(name, me), modRevision: mine?.modRevision ?? 0 });
        writes.push(nics.length === 0 ? { delete: NETWORK_KEYS.nicsOf(name, me) } : { put: NETWORK_KEYS.nicsOf(name, me), value });
      }
      if (writes.length > 0 && !(await kv.txn(guards, writes)).won) continue;
      // A moved NIC may be listed by its old host too until that host forgets it: one reservation per MAC.
      const all = (await kv.list(NETWORK_KEYS.nics(name))).entries.flatMap((e) => JSON.parse(e.value) as SpanNic[]);
      return [...new Map(all.map((n) => [n.mac, n])).values()];
    }
    throw new VirtnodeError('CONFLICT', `network ${name}: its records kept changing while this host's NICs were recorded: try again`, { field: '--network' });
  }

  async usersElsewhere(network: string): Promise<Array<{ instance: string; host: string }>> {
    const me = this.host();
    const out: Array<{ instance: string; host: string }> = [];
    for (const e of (await this.kv().list(NETWORK_KEYS.nics(network))).entries) {
      const host = e.key.slice(NETWORK_KEYS.nics(network).length);
      if (host === me) continue;
      // NAME-nicN is a second NIC of NAME (see the network service's DNS names): one user.
      for (const n of new Set((JSON.parse(e.value) as SpanNic[]).map((x) => x.hostname.replace(/-nic\d+$/, '')))) out.push({ instance: n, host });
    }
    return out.sort((a, b) => a.instance.localeCompare(b.instance));
  }

  takenElsewhere(network: string): Map<string, { owner: string; mac: string }> {
    return this.taken.get(network) ?? new Map();
  }

  async refreshTaken(networks: readonly string[]): Promise<void> {
    const me = this.host();
    for (const name of new Set(networks)) {
      const list = await this.kv().list(NETWORK_KEYS.addresses(name));
      const held = new Map<string, { owner: string; mac: string }>();
      for (const e of list.entries) {
        const r = JSON.parse(e.value) as AddressRecord;
        if (r.host !== me) held.set(e.key.slice(NETWORK_KEYS.addresses(name).length), { owner: `instance ${r.hostname} on host ${r.host}`, mac: r.mac });
      }
      this.taken.set(name, held);
    }
  }
}

/** A host removed from the cluster: its NICs on cluster networks and the addresses they held are forgotten. */
export async function forgetHostNetworkRecords(kv: Kv, host: string): Promise<void> {
  const [nics, addresses] = await Promise.all([kv.list(NETWORK_KEYS.nicsAll), kv.list('/virtnode/network-addresses/')]);
  const writes: KvWrite[] = [
    ...nics.entries.filter((e) => e.key.endsWith(`/${host}`)).map((e) => ({ delete: e.key })),
    ...addresses.entries.filter((e) => (JSON.parse(e.value) as AddressRecord).host === host).map((e) => ({ delete: e.key })),
  ];
  if (writes.length > 0) await kv.txn([], writes);
}
