import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import { type StatePaths, within } from '../lib/paths.ts';
import { acquireNetnsLock } from '../lib/netns-lock.ts';
import { Reverter } from '../lib/reverter.ts';
import type { Db } from '../store/db.ts';
import { transaction } from '../store/db.ts';
import { InstanceRepository } from '../store/instances.ts';
import { acquireLock } from '../store/locks.ts';
import { NetworkRepository } from '../store/networks.ts';
import { type DnsmasqFiles, type Lease, parseLeases, renderDhcpHosts, renderDnsmasqConfig, renderHostsFile, type Reservation } from './dnsmasq-config.ts';
import { dnsmasqPid, startOrReloadDnsmasq, stopDnsmasq } from './dnsmasq.ts';
import { type SystemUser, dnsmasqReadableDir, dnsmasqUser, writeDnsmasqReadable } from './dnsmasq-user.ts';
import { parseCidr } from './ipv4.ts';
import { bridgeExists, deleteLink, ensureBridge, ensureTap, ensureVeth, linkExists, listLinks, removeAddress } from './links.ts';
import { dhcpHostOf, type Network } from './model.ts';
import type { MovingNic } from './movable.ts';
import { bridgeName, homeTag, newNetworkId, tapName, vethPeerName } from './names.ts';
import { type Instance, USER_NETWORK } from '../instances/model.ts';
import { applyRuleset, deleteTable, foreignForwardDrops, tableExists } from './nft-apply.ts';
import { forwardDropHint } from './nft.ts';
import { applyPortForwards, deletePortForwards, portForwardTable } from './port-forward-nft.ts';
import { hostRoutes } from './routes.ts';
import type { NetworkSpan, SpanNic } from './span.ts';
import { MAX_VNI, type NetworkCreateRequest, validateNetworkCreate } from './validate.ts';
import { ensureVxlan, setFloodPeers, vxlanName } from './vxlan.ts';

const toReservations = (nics: SpanNic[]): Reservation[] => nics.flatMap((n) => (n.address === undefined ? [] : [{ mac: n.mac, address: n.address, hostname: n.hostname }]));

/** A free VNI for a new cluster network: from its random id, the next one up when taken. */
function defaultVni(id: string, existing: Network[]): number {
  const taken = new Set(existing.map((n) => n.cluster?.vni));
  let vni = 4096 + (Number.parseInt(id, 16) % (MAX_VNI - 4096));
  while (taken.has(vni)) vni = vni >= MAX_VNI ? 4096 : vni + 1;
  return vni;
}

/** The host side of a NIC on a managed network: a tap for a VM, a veth pair for a container. */
export type NicLink = 'tap' | 'veth';

const NETWORKS_LOCK = '#networks';
const LOCK_WAIT_MS = 60_000;
const FENCE_LOCK_WAIT_MS = 2_000;

export interface NetworkStatus {
  bridge: boolean;
  dnsmasqPid: number | undefined;
  nftTable: boolean;
  /** Cluster nat/isolated: this host's VXLAN device of the network exists. */
  vxlan?: boolean;
  /** This host runs the network's DHCP/DNS and gateway (false: a cluster network whose DHCP host is another). */
  servesDhcp: boolean;
  /** Instances with a NIC on the network. */
  instances: string[];
  warnings: string[];
}

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new VirtnodeError('PERMISSION', `${what} needs root (bridges, taps, dnsmasq and nftables are host-wide)`, {
      hint: 'run it with sudo, or use the default user-mode network (no --network), which needs no root',
    });
  }
}

/**
 * Managed networks: nat (bridge + dnsmasq + masquerade in virtnode's own nftables table), isolated (the same
 * without a way out) and bridge (NICs join an existing bridge). Everything host-wide is named from the network's
 * id, so two state directories on one host never collide, and everything is brought up idempotently by
 * `ensureUp`, so a network comes back after a reboot the first time an instance on it starts (or reconcile runs).
 */
export class NetworkService {
  readonly paths: StatePaths;
  readonly db: Db;
  readonly repo: NetworkRepository;
  readonly instances: InstanceRepository;
  readonly tag: string;
  private dnsmasqUser: SystemUser | undefined;
  /** Set by the application layer while this host is in a cluster: networks are then defined cluster-wide. */
  span: NetworkSpan | undefined;

  constructor(paths: StatePaths, db: Db) {
    this.paths = paths;
    this.db = db;
    this.repo = new NetworkRepository(db);
    this.instances = new InstanceRepository(db);
    this.tag = homeTag(paths.root);
  }

  dir(name: string): string {
    return within(join(this.paths.root, 'networks'), validateName('name', name));
  }

  /** The cluster this host is in, with its name and address; undefined when standalone. */
  private clustered(): { span: NetworkSpan; host: string; address: string } | undefined {
    const self = this.span?.self();
    return self === undefined ? undefined : { span: this.span!, ...self };
  }

  /** A cluster network's span: only a process that runs the cluster (the daemon) realizes one. */
  private spanOf(network: Network): { span: NetworkSpan; host: string; address: string } {
    const c = this.clustered();
    if (c === undefined) {
      throw new VirtnodeError('INVALID_STATE', `network ${network.name} is a cluster network: this process is not serving the cluster`, {
        hint: 'run it through the virtnode daemon of a cluster host',
      });
    }
    return c;
  }

  /** Does this host run the network's DHCP/DNS and gateway (every local network; a cluster one on its DHCP host)? */
  private dhcpHere(network: Network): boolean {
    return network.cluster === undefined || dhcpHostOf(network) === this.span?.self()?.host;
  }

  /**
   * A cluster network as the cluster defines it now (its DHCP host may have changed: recorded here too); the
   * local record when the definition is gone (kept here while instances use it) or for a local network.
   */
  private async current(network: Network): Promise<Network> {
    if (network.cluster === undefined) return network;
    const def = await this.spanOf(network).span.definition(network.name);
    if (def?.id !== network.id) return network;
    if (JSON.stringify(def.cluster) !== JSON.stringify(network.cluster)) this.repo.updateSpec({ ...network, cluster: def.cluster! });
    return { ...network, cluster: def.cluster! };
  }

  /** A host that is not (or no longer) a cluster network's DHCP host: no dnsmasq, nftables table or gateway here. */
  private async dropDhcp(network: Network): Promise<void> {
    const files = this.files(network);
    await stopDnsmasq(files);
    await deleteTable(network);
    await removeAddress(network.bridge, `${network.ipv4!.gateway}/${parseCidr('subnet', network.ipv4!.subnet).prefix}`);
    // Its readable files stay (the DHCP host's, were hosts to share /run): teardown then leaves them to that host.
    rmSync(files.config, { force: true });
    rmSync(files.leases, { force: true });
  }

  /** Read from /etc/passwd once per service. */
  private runsDnsmasqAs(): SystemUser {
    return (this.dnsmasqUser ??= dnsmasqUser());
  }

  files(network: Network): DnsmasqFiles {
    const dir = this.dir(network.name);
    const readable = dnsmasqReadableDir(network.id);
    return {
      config: join(dir, 'dnsmasq.conf'),
      pidfile: join(dir, 'dnsmasq.pid'),
      leases: join(dir, 'dnsmasq.leases'),
      dhcpHosts: join(readable, 'dhcp-hosts'),
      hosts: join(readable, 'hosts'),
      log: join(dir, 'dnsmasq.log'),
      user: this.runsDnsmasqAs().name,
    };
  }

  mustGet(name: string): Network {
    const network = this.repo.get(name);
    if (network === undefined) {
      throw new VirtnodeError('NOT_FOUND', `network ${name} does not exist`, { field: '--network', hint: 'see `virtnode network ls`; create one with `virtnode network create NAME`' });
    }
    return network;
  }

  list(): Network[] {
    return this.repo.list();
  }

  /** Does the instance have a NIC on a network that leads out of the host (NAT or bridged), besides user-mode? */
  hasWayOut(instance: Instance): boolean {
    return instance.nics.some((nic) => {
      const mode = nic.network === USER_NETWORK ? undefined : this.repo.get(nic.network)?.mode;
      return mode === 'nat' || mode === 'bridge';
    });
  }

  async create(request: NetworkCreateRequest): Promise<{ network: Network; warnings: string[] }> {
    const release = await acquireLock(this.db, NETWORKS_LOCK, 'network create', { waitMs: LOCK_WAIT_MS });
    // The routes checked below are the host's, shared with other state directories: held until this one's are up.
    const releaseHost = await acquireNetnsLock('network-create', 'network create', LOCK_WAIT_MS).catch((e: unknown) => {
      release();
      throw e;
    });
    try {
      const bridges = new Set((await listLinks()).filter((l) => l.kind === 'bridge').map((l) => l.ifname));
      const c = this.clustered();
      if (c !== undefined) await this.pullLocked(c);
      const existing = this.repo.list();
      const valid = validateNetworkCreate(request, { existing, routes: await hostRoutes(), bridgeExists: (n) => bridges.has(n), clustered: c !== undefined });
      requireRoot('network create');
      const id = newNetworkId();
      const { vni, ...rest } = valid;
      const cluster = c === undefined ? undefined : { createdOn: c.host, ...(valid.mode === 'bridge' ? {} : { vni: vni ?? defaultVni(id, existing) }) };
      const network: Network = { ...rest, id, bridge: valid.bridge ?? bridgeName(id), ...(cluster === undefined ? {} : { cluster }), createdAt: new Date().toISOString() };
      const reverter = new Reverter();
      try {
        // In a cluster the definition goes to etcd first: of two hosts creating one name at once, one wins.
        if (c !== undefined) {
          await c.span.define(network);
          reverter.add('remove the cluster definition', () => c.span.undefine(network));
        }
        transaction(this.db, () => this.repo.insert(network));
        reverter.add('remove the network record', () => this.repo.delete(network.name));
        reverter.add('remove what was set up', () => this.teardown(network));
        await this.ensureUp(network);
        reverter.success();
      } catch (e) {
        await reverter.revert();
        throw e;
      }
      return { network, warnings: await this.warnings(network) };
    } finally {
      await releaseHost();
      release();
    }
  }

  /** Why guests may not get out, when some other software's FORWARD chain drops by default. */
  async warnings(network: Network): Promise<string[]> {
    if (network.mode !== 'nat' || process.getuid?.() !== 0) return [];
    const drops = await foreignForwardDrops().catch(() => []);
    return drops.length === 0 ? [] : [forwardDropHint(drops, network)];
  }

  /** This host's NICs on the network, each with its DNS name (the instance's; NAME-nicN for a second NIC). */
  private localNics(network: Network): SpanNic[] {
    const seen = new Set<string>();
    const out: SpanNic[] = [];
    for (const nic of this.instances.nicsOn(network.name)) {
      const hostname = seen.has(nic.instance) ? `${nic.instance}-nic${nic.index}` : nic.instance;
      seen.add(nic.instance);
      out.push({ mac: nic.mac, hostname, ...(nic.address === undefined ? {} : { address: nic.address }) });
    }
    return out;
  }

  reservations(network: Network): Reservation[] {
    return toReservations(this.localNics(network));
  }

  /**
   * The reservations dnsmasq hands out: this host's NICs, and for a cluster network every host's (this host's
   * published first, their addresses claimed cluster-wide).
   */
  private async allReservations(network: Network): Promise<Reservation[]> {
    if (network.cluster === undefined) return this.reservations(network);
    return toReservations(await this.spanOf(network).span.publish(network, this.localNics(network)));
  }

  /** Writes dnsmasq's files; `configChanged` when its configuration is new or differs (a SIGHUP does not re-read it). */
  private writeFiles(network: Network, reservations: Reservation[]): { files: DnsmasqFiles; configChanged: boolean } {
    const files = this.files(network);
    mkdirSync(this.dir(network.name), { recursive: true, mode: 0o700 });
    const config = renderDnsmasqConfig(network, files);
    const configChanged = !existsSync(files.config) || readFileSync(files.config, 'utf8') !== config;
    writeFileSync(files.config, config, { mode: 0o600 });
    const readable = dnsmasqReadableDir(network.id);
    const user = this.runsDnsmasqAs();
    writeDnsmasqReadable(files.dhcpHosts, readable, renderDhcpHosts(reservations), user);
    writeDnsmasqReadable(files.hosts, readable, renderHostsFile(reservations, network.domain!), user);
    return { files, configChanged };
  }

  /** Brings a network up, whatever part of it exists (after a reboot: none). Safe to call any time. */
  async ensureUp(recorded: Network): Promise<void> {
    requireRoot(`network ${recorded.name}`);
    let network = recorded;
    const c = network.cluster === undefined ? undefined : this.spanOf(network);
    if (network.mode === 'bridge') {
      if (!(await bridgeExists(network.bridge))) {
        const where = c === undefined ? '' : ` on host ${c.host}`;
        throw new VirtnodeError('NOT_FOUND', `network ${network.name}: the bridge ${network.bridge} does not exist${c === undefined ? ' (any more)' : where}`, {
          field: '--network',
          hint: c === undefined ? `create it again (ip link add ${network.bridge} type bridge), or remove the network` : `a bridged cluster network needs the bridge ${network.bridge} on each host its instances run on: create it on ${c.host}, or run the instance on a host that has it`,
        });
      }
      return;
    }
    const release = await acquireLock(this.db, `#network:${network.name}`, 'network up', { waitMs: LOCK_WAIT_MS });
    try {
      // Removed meanwhile (a cluster network another host removed, torn down here while this waited): not again.
      if (this.repo.get(network.name)?.id !== network.id) return;
      // The DHCP host as the cluster has it now, before anything is brought up: a host whose role another took
      // over while it was offline never brings its gateway back.
      network = await this.current(network);
      const ipv4 = network.ipv4!;
      // A fenced host (its lease lost) serves nothing: another host may take the role over once its lease expires.
      const dhcpHere = this.dhcpHere(network) && (c === undefined || c.span.holdsLease());
      if (!dhcpHere) await this.dropDhcp(network);
      const alias = `${this.tag}:bridge:${network.name}`;
      // Only the DHCP host's bridge has the gateway address (one gateway on the shared L2).
      await ensureBridge(network.bridge, alias, dhcpHere ? `${ipv4.gateway}/${parseCidr('subnet', ipv4.subnet).prefix}` : undefined);
      if (c !== undefined && network.cluster?.vni !== undefined) {
        const vx = vxlanName(network.id);
        await ensureVxlan(vx, network.cluster.vni, c.address, network.bridge, alias);
        await setFloodPeers(vx, await c.span.peers());
      }
      const reservations = await this.allReservations(network);
      if (!dhcpHere) return;
      if (network.mode === 'nat') writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
      await applyRuleset(network);
      const { files, configChanged } = this.writeFiles(network, reservations);
      await startOrReloadDnsmasq(files, { restart: configChanged });
    } finally {
      release();
    }
  }

  /**
   * In a cluster: the cluster's network definitions recorded here (new ones added; removed ones torn down and
   * forgotten unless an instance here still has a NIC on one). Answers what changed, for the log.
   */
  async pullCluster(): Promise<string[]> {
    const c = this.clustered();
    if (c === undefined) return [];
    const release = await acquireLock(this.db, NETWORKS_LOCK, 'network pull', { waitMs: LOCK_WAIT_MS });
    try {
      return await this.pullLocked(c);
    } finally {
      release();
    }
  }

  private async pullLocked(c: { span: NetworkSpan }): Promise<string[]> {
    const defs = new Map((await c.span.definitions()).map((d) => [d.name, d]));
    const notes: string[] = [];
    const users = (name: string) => [...new Set(this.instances.nicsOn(name).map((n) => n.instance))];
    for (const local of this.repo.list()) {
      if (local.cluster === undefined || defs.get(local.name)?.id === local.id) continue;
      if (users(local.name).length > 0) {
        notes.push(`network ${local.name}: gone from the cluster, kept here while ${users(local.name).join(', ')} use it`);
        continue;
      }
      const releaseNet = await acquireLock(this.db, `#network:${local.name}`, 'network gone', { waitMs: LOCK_WAIT_MS });
      try {
        if (process.getuid?.() === 0) await this.teardown(local);
        this.repo.delete(local.name);
      } finally {
        releaseNet();
      }
      notes.push(`network ${local.name}: gone from the cluster, removed here`);
    }
    for (const def of defs.values()) {
      const local = this.repo.get(def.name);
      if (local === undefined) {
        transaction(this.db, () => this.repo.insert(def));
        notes.push(`network ${def.name}: defined by host ${def.cluster?.createdOn ?? '?'}`);
      } else if (local.cluster === undefined) {
        notes.push(`network ${def.name}: this host's own network of that name hides the cluster's`);
      } else if (local.id === def.id && JSON.stringify(local.cluster) !== JSON.stringify(def.cluster)) {
        this.repo.updateSpec({ ...local, cluster: def.cluster! });
        if (dhcpHostOf(local) !== dhcpHostOf(def)) notes.push(`network ${def.name}: its DHCP host is now ${dhcpHostOf(def)} (was ${dhcpHostOf(local)})`);
      }
    }
    return notes;
  }

  /**
   * In a cluster (the daemon): every cluster nat/isolated network up here, its VXLAN flooding to the online hosts;
   * one whose DHCP host is offline: this host tries to take that role over (one host wins).
   */
  async realizeCluster(): Promise<{ notes: string[]; errors: string[] }> {
    const c = this.clustered();
    if (c === undefined) return { notes: [], errors: [] };
    const notes: string[] = [];
    const errors: string[] = [];
    for (const network of this.repo.list()) {
      if (network.cluster === undefined || network.mode === 'bridge') continue;
      try {
        const def = await c.span.takeOverDhcp(network.name);
        if (def?.id === network.id && dhcpHostOf(def) === c.host && dhcpHostOf(network) !== c.host) {
          notes.push(`network ${network.name}: its DHCP host ${dhcpHostOf(network)} is offline: this host took its DHCP/DNS and gateway over`);
        }
        await this.ensureUp(network);
      } catch (e) {
        errors.push(`network ${network.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return { notes, errors };
  }

  /**
   * This host fenced itself (its cluster lease lost): the cluster networks it serves DHCP/DNS and gateway for drop
   * them at once, from the local records (etcd may be out of reach), before its lease can expire and another host
   * takes them over. The daemon's loop brings them back if the host holds its lease again and is still named.
   */
  async dropDhcpRoles(): Promise<string[]> {
    const dropped: string[] = [];
    for (const network of this.repo.list()) {
      if (network.cluster === undefined || network.mode === 'bridge' || !this.dhcpHere(network)) continue;
      // A bring-up under way is waited for briefly; the drop happens either way (it sees the fence after).
      const release = await acquireLock(this.db, `#network:${network.name}`, 'network fenced', { waitMs: FENCE_LOCK_WAIT_MS }).catch(() => undefined);
      try {
        await this.dropDhcp(network);
        dropped.push(network.name);
      } finally {
        release?.();
      }
    }
    return dropped;
  }

  /** Before NICs are resolved (launch, nic attach): in a cluster, its networks known here and the addresses taken elsewhere. */
  async beforeNics(names: readonly string[]): Promise<void> {
    const c = this.clustered();
    const wanted = names.filter((n) => n !== USER_NETWORK);
    if (c === undefined || wanted.length === 0) return;
    if (wanted.some((n) => this.repo.get(n) === undefined)) await this.pullCluster();
    // A bridged cluster network's bridge must exist on the host its instance is made on: refused before anything is.
    for (const name of wanted) {
      const network = this.repo.get(name);
      if (network?.cluster !== undefined && network.mode === 'bridge') await this.ensureUp(network);
    }
    await c.span.refreshTaken(wanted.filter((n) => this.repo.get(n)?.cluster !== undefined));
  }

  /** The instances on other hosts with a NIC on a cluster network (none for a local network or standalone). */
  async usersElsewhere(network: Network): Promise<string[]> {
    const c = this.clustered();
    if (network.cluster === undefined || c === undefined) return [];
    return (await c.span.usersElsewhere(network.name)).map((u) => u.instance);
  }

  /** Every host's NICs on a cluster network, as recorded in the cluster (none for a local network). */
  async clusterNics(network: Network): Promise<SpanNic[]> {
    if (network.cluster === undefined) return [];
    return this.spanOf(network).span.publish(network, this.localNics(network));
  }

  /** Addresses of a cluster network held on other hosts (address -> who, and the MAC), as read by `beforeNics`. */
  takenElsewhere(name: string): Map<string, { owner: string; mac: string }> {
    return this.span?.takenElsewhere(name) ?? new Map();
  }

  /** Cheap check used by reconcile: is anything of a managed network missing? */
  async isUp(network: Network): Promise<boolean> {
    if (network.mode === 'bridge') return true;
    // A cluster network is the cluster's to bring up (the daemon's loop); nothing to repair without it.
    if (network.cluster !== undefined && this.clustered() === undefined) return true;
    if (network.cluster?.vni !== undefined && !(await linkExists(vxlanName(network.id)))) return false;
    if (!this.dhcpHere(network)) return bridgeExists(network.bridge);
    return dnsmasqPid(this.files(network)) !== undefined && (await bridgeExists(network.bridge));
  }

  /** syncReservations of the managed networks named (an instance's NICs came or went, or moved to another host). */
  async syncReservationsOf(names: readonly string[]): Promise<void> {
    for (const name of new Set(names)) {
      if (name === USER_NETWORK) continue;
      const network = this.repo.get(name);
      if (network !== undefined) await this.syncReservations(network);
    }
  }

  /** Rewrites the reservations and host records and has dnsmasq re-read them (after NICs change). */
  async syncReservations(recorded: Network): Promise<void> {
    let network = recorded;
    if (network.mode === 'bridge') {
      // A bridged cluster network: its NICs are recorded all the same (so that `network rm` sees them).
      if (network.cluster !== undefined) await this.spanOf(network).span.publish(network, this.localNics(network));
      return;
    }
    const release = await acquireLock(this.db, `#network:${network.name}`, 'network sync', { waitMs: LOCK_WAIT_MS });
    try {
      if (this.repo.get(network.name)?.id !== network.id) return;
      network = await this.current(network);
      const reservations = await this.allReservations(network);
      if (!this.dhcpHere(network)) return;
      const { files, configChanged } = this.writeFiles(network, reservations);
      if (dnsmasqPid(files) !== undefined) await startOrReloadDnsmasq(files, { restart: configChanged });
    } finally {
      release();
    }
  }

  /**
   * Before an instance starts: its networks up (idempotent, so they come back after a reboot) and a host link per
   * NIC on the network's bridge: a tap (QEMU opens it) or a veth pair (LXC moves its peer into the container).
   */
  async prepareInstance(instance: Instance, options: { link?: NicLink } = {}): Promise<void> {
    for (const nic of instance.nics) {
      if (nic.network === USER_NETWORK) continue;
      const network = this.mustGet(nic.network);
      await this.ensureUp(network);
      const multiQueue = (instance.spec.tuning?.netQueues ?? 1) > 1;
      if (options.link === 'veth') await ensureVeth(tapName(instance.uuid, nic.index), vethPeerName(instance.uuid, nic.index), nic.mac, this.linkAlias(instance.name), network.bridge);
      else await ensureTap(tapName(instance.uuid, nic.index), this.linkAlias(instance.name), network.bridge, { multiQueue });
    }
    await this.syncPortForwards(instance);
  }

  /** The alias of an instance's host links (removeStaleTaps finds them by it). */
  private linkAlias(instance: string): string {
    return `${this.tag}:tap:${instance}`;
  }

  /**
   * The taps of a VM moving here live, on this host's networks of the same names (the caller checked them: checkNicsArrive), made
   * before its incoming QEMU opens them. Answers their removal (for a move that fails or is cancelled).
   */
  async prepareArrivingTaps(instance: { name: string; uuid: string }, nics: readonly MovingNic[], options: { multiQueue?: boolean } = {}): Promise<() => Promise<void>> {
    const made: string[] = [];
    const remove = async () => {
      for (const tap of made.splice(0)) await deleteLink(tap);
    };
    try {
      for (const nic of nics) {
        const network = this.mustGet(nic.network);
        await this.ensureUp(network);
        const tap = tapName(instance.uuid, nic.index);
        made.push(tap);
        await ensureTap(tap, this.linkAlias(instance.name), network.bridge, { multiQueue: options.multiQueue === true });
      }
    } catch (e) {
      await remove();
      throw e;
    }
    return remove;
  }

  /**
   * The port forwards of an instance without a user-mode NIC (QEMU forwards those itself), as DNAT to its first
   * address on a managed network; none: its table goes.
   */
  async syncPortForwards(instance: Instance): Promise<void> {
    const table = portForwardTable(instance.uuid);
    const nic = instance.nics.find((n) => n.network !== USER_NETWORK && n.address !== undefined);
    if (instance.nics.some((n) => n.network === USER_NETWORK) || nic === undefined) return deletePortForwards(table);
    const forwards = (instance.spec.portForwards ?? []).map((f) => ({ ...f, guestAddress: nic.address! }));
    await applyPortForwards(table, forwards, [this.mustGet(nic.network).bridge]);
  }

  /** After an instance's process is gone: its taps (or veth pairs) go too. */
  async releaseInstance(instance: Instance): Promise<void> {
    await deletePortForwards(portForwardTable(instance.uuid));
    for (const nic of instance.nics) {
      if (nic.network === USER_NETWORK) continue;
      await deleteLink(tapName(instance.uuid, nic.index));
      await deleteLink(vethPeerName(instance.uuid, nic.index));
    }
  }

  /** Taps of this state directory whose instance is not running (left by a crash or a killed QEMU). */
  async removeStaleTaps(active: (instance: string) => boolean): Promise<string[]> {
    const prefix = `${this.tag}:tap:`;
    const removed: string[] = [];
    for (const link of await listLinks()) {
      if (link.alias?.startsWith(prefix) !== true || active(link.alias.slice(prefix.length))) continue;
      await deleteLink(link.ifname);
      removed.push(link.ifname);
    }
    return removed;
  }

  async status(network: Network): Promise<NetworkStatus> {
    const instances = [...new Set(this.instances.nicsOn(network.name).map((n) => n.instance))];
    if (network.mode === 'bridge') return { bridge: await bridgeExists(network.bridge), dnsmasqPid: undefined, nftTable: false, servesDhcp: false, instances, warnings: [] };
    return {
      servesDhcp: this.dhcpHere(network),
      bridge: await bridgeExists(network.bridge),
      dnsmasqPid: dnsmasqPid(this.files(network)),
      nftTable: process.getuid?.() === 0 ? await tableExists(network).catch(() => false) : false,
      ...(network.cluster?.vni === undefined ? {} : { vxlan: await linkExists(vxlanName(network.id)) }),
      instances,
      warnings: await this.warnings(network),
    };
  }

  leases(name: string): Lease[] {
    const network = this.mustGet(name);
    if (network.mode === 'bridge') {
      throw new VirtnodeError('INVALID', `network ${name} is bridged to ${network.bridge}: its DHCP server is not virtnode's`, { field: 'name' });
    }
    try {
      return parseLeases(readFileSync(this.files(network).leases, 'utf8'));
    } catch {
      return [];
    }
  }

  async remove(name: string): Promise<void> {
    const release = await acquireLock(this.db, NETWORKS_LOCK, 'network rm', { waitMs: LOCK_WAIT_MS });
    try {
      const network = this.mustGet(name);
      const users = [...new Set(this.instances.nicsOn(name).map((n) => n.instance))];
      const c = network.cluster === undefined ? undefined : this.spanOf(network);
      const elsewhere = c === undefined ? [] : (await c.span.usersElsewhere(name)).map((u) => `instance ${u.instance} on host ${u.host}`);
      const all = [...users.map((u) => `instance ${u}${c === undefined ? '' : ` on host ${c.host}`}`), ...elsewhere];
      if (all.length > 0) {
        throw new VirtnodeError('INVALID_STATE', `network ${name} is used by ${all.join(', ')}`, {
          field: 'name',
          hint: 'detach their NICs (virtnode nic detach) or delete them first',
        });
      }
      requireRoot('network rm');
      // The other hosts tear their part down when they see the definition go (their daemons watch it).
      if (c !== undefined) await c.span.undefine(network);
      // Under the network's own lock: a bring-up waiting on it (the cluster loop's) then finds no record, does nothing.
      const releaseNet = await acquireLock(this.db, `#network:${name}`, 'network rm', { waitMs: LOCK_WAIT_MS });
      try {
        await this.teardown(network);
        this.repo.delete(name);
      } finally {
        releaseNet();
      }
    } finally {
      release();
    }
  }

  /** Removes everything of a network from the host: dnsmasq, nft table, bridge (virtnode's own only), files. */
  async teardown(network: Network): Promise<void> {
    const ranDhcp = network.cluster === undefined || existsSync(this.files(network).config);
    if (network.mode !== 'bridge') {
      await stopDnsmasq(this.files(network));
      await deleteTable(network);
      if (network.cluster?.vni !== undefined) await deleteLink(vxlanName(network.id));
      await deleteLink(network.bridge);
    }
    const dir = this.dir(network.name);
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    // A cluster network's files dnsmasq reads are its DHCP host's (hosts simulated on one machine share /run).
    if (ranDhcp) rmSync(dnsmasqReadableDir(network.id), { recursive: true, force: true });
  }
}
