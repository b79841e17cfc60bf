import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/ids.ts';
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
import { bridgeExists, deleteLink, ensureBridge, ensureTap, ensureVeth, listLinks } from './links.ts';
import type { Network } from './model.ts';
import type { MovingNic } from './movable.ts';
import { bridgeName, homeTag, newNetworkId, tapName, vethPeerName } from './names.ts';
import { type Instance, USER_NETWORK } from '../instances/model.ts';
import { applyRuleset, deleteTable, foreignForwardDrops, tableExists } from './nft-apply.ts';
import { forwardDropHint } from './nft.ts';
import { applyPortForwards, deletePortForwards, portForwardTable } from './port-forward-nft.ts';
import { hostRoutes } from './routes.ts';
import { type NetworkCreateRequest, validateNetworkCreate } from './validate.ts';

/** The host side of a NIC on a managed network: a tap for a VM, a veth pair for a container. */
export type NicLink = 'tap' | 'veth';

const NETWORKS_LOCK = '#networks';
const LOCK_WAIT_MS = 60_000;

export interface NetworkStatus {
  bridge: boolean;
  dnsmasqPid: number | undefined;
  nftTable: boolean;
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
      const valid = validateNetworkCreate(request, { existing: this.repo.list(), routes: await hostRoutes(), bridgeExists: (n) => bridges.has(n) });
      requireRoot('network create');
      const id = newNetworkId();
      const network: Network = { ...valid, id, bridge: valid.bridge ?? bridgeName(id), createdAt: new Date().toISOString() };
      const reverter = new Reverter();
      try {
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

  reservations(network: Network): Reservation[] {
    const seen = new Set<string>();
    const out: Reservation[] = [];
    for (const nic of this.instances.nicsOn(network.name)) {
      if (nic.address === undefined) continue;
      const hostname = seen.has(nic.instance) ? `${nic.instance}-nic${nic.index}` : nic.instance;
      seen.add(nic.instance);
      out.push({ mac: nic.mac, address: nic.address, hostname });
    }
    return out;
  }

  /** Writes dnsmasq's files; `configChanged` when its configuration is new or differs (a SIGHUP does not re-read it). */
  private writeFiles(network: Network): { files: DnsmasqFiles; configChanged: boolean } {
    const files = this.files(network);
    mkdirSync(this.dir(network.name), { recursive: true, mode: 0o700 });
    const reservations = this.reservations(network);
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
  async ensureUp(network: Network): Promise<void> {
    requireRoot(`network ${network.name}`);
    if (network.mode === 'bridge') {
      if (!(await bridgeExists(network.bridge))) {
        throw new VirtnodeError('NOT_FOUND', `network ${network.name}: the bridge ${network.bridge} does not exist (any more)`, {
          hint: `create it again (ip link add ${network.bridge} type bridge), or remove the network`,
        });
      }
      return;
    }
    const release = await acquireLock(this.db, `#network:${network.name}`, 'network up', { waitMs: LOCK_WAIT_MS });
    try {
      const ipv4 = network.ipv4!;
      await ensureBridge(network.bridge, `${this.tag}:bridge:${network.name}`, `${ipv4.gateway}/${parseCidr('subnet', ipv4.subnet).prefix}`);
      if (network.mode === 'nat') writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
      await applyRuleset(network);
      const { files, configChanged } = this.writeFiles(network);
      await startOrReloadDnsmasq(files, { restart: configChanged });
    } finally {
      release();
    }
  }

  /** Cheap check used by reconcile: is anything of a managed network missing? */
  async isUp(network: Network): Promise<boolean> {
    if (network.mode === 'bridge') return true;
    return dnsmasqPid(this.files(network)) !== undefined && (await bridgeExists(network.bridge));
  }

  /** Rewrites the reservations and host records and has dnsmasq re-read them (after NICs change). */
  async syncReservations(network: Network): Promise<void> {
    if (network.mode === 'bridge') return;
    const release = await acquireLock(this.db, `#network:${network.name}`, 'network sync', { waitMs: LOCK_WAIT_MS });
    try {
      const { files, configChanged } = this.writeFiles(network);
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
    if (network.mode === 'bridge') return { bridge: await bridgeExists(network.bridge), dnsmasqPid: undefined, nftTable: false, instances, warnings: [] };
    return {
      bridge: await bridgeExists(network.bridge),
      dnsmasqPid: dnsmasqPid(this.files(network)),
      nftTable: process.getuid?.() === 0 ? await tableExists(network).catch(() => false) : false,
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
      if (users.length > 0) {
        throw new VirtnodeError('INVALID_STATE', `network ${name} is used by ${users.map((u) => `instance ${u}`).join(', ')}`, {
          hint: 'detach their NICs (virtnode nic detach) or delete them first',
        });
      }
      requireRoot('network rm');
      await this.teardown(network);
      this.repo.delete(name);
    } finally {
      release();
    }
  }

  /** Removes everything of a network from the host: dnsmasq, nft table, bridge (virtnode's own only), files. */
  async teardown(network: Network): Promise<void> {
    if (network.mode !== 'bridge') {
      await stopDnsmasq(this.files(network));
      await deleteTable(network);
      await deleteLink(network.bridge);
    }
    const dir = this.dir(network.name);
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    rmSync(dnsmasqReadableDir(network.id), { recursive: true, force: true });
  }
}
