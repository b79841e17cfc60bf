/**
 * This host's part in a cluster: forming one (`init`), inviting (`add`), joining, listing, removing; and, in the
 * daemon, running what membership needs (the etcd member on the first three hosts, the cluster API, the lease).
 * Without STATE/cluster/cluster.json the host is standalone and none of this runs.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:https';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { VirtnodeError, invalid } from '../lib/errors.ts';
import { writeFileAtomic } from '../lib/fs-atomic.ts';
import { EtcdKv, type EtcdMember } from './etcd-kv.ts';
import { EtcdMemberProcess, etcdHealthy } from './etcd-member.ts';
import { decodeJoinToken, encodeJoinToken, newTokenSecret, secretHash, secretMatches } from './join-token.ts';
import { Liveness } from './liveness.ts';
import {
  type AliveRecord,
  type ClusterConfig,
  DEFAULT_API_PORT,
  ETCD_CLIENT_PORT,
  ETCD_PEER_PORT,
  type HostCapacity,
  type HostRecord,
  type HostUse,
  KEYS,
  MAX_CLOCK_SKEW_MS,
  MAX_ETCD_MEMBERS,
  TOKEN_TTL_SECONDS,
  type TokenRecord,
} from './model.ts';
import { forgetHeldImages } from './image-index.ts';
import { forgetHostNetworkRecords } from './networks-etcd.ts';
import type { PeerTls } from './peer-files.ts';
import { type PeerFileRoute, type PeerRoute, fetchPinnedCa, peerCall, startPeerServer } from './peer-http.ts';
import { caKeyPath, createCa, createKeyAndCsr, fingerprint, issueHostCert, signHostCsr, tlsFilesIn } from './pki.ts';
import { type Revocation, RevocationList, certSerial, ensureCrl, revocationWrite, writeCrl } from './revocation.ts';

export type HostState = 'online' | 'offline' | 'evacuated';

export interface ClusterHostView {
  name: string;
  address: string;
  state: HostState;
  etcdMember: boolean;
  labels: Record<string, string>;
  capacity?: HostCapacity;
  use?: HostUse;
  /** When its live record was last written (absent while offline). */
  updatedAt?: string;
}

/** This host lost its lease: it takes no new work until it holds one again (see `fence` in ClusterService). */
export interface FenceView {
  since: string;
  reason: string;
}

export interface ClusterStatus {
  enabled: boolean;
  clusterId?: string;
  host?: string;
  fenced?: FenceView;
  hosts: ClusterHostView[];
  etcd: { external: boolean; leader?: string; members: Array<{ name: string; id: string; clientUrls: string[]; leader: boolean }> };
}

export interface ExternalEtcd {
  urls: string[];
  ca: string;
  cert: string;
  key: string;
}

export interface ClusterServiceOptions {
  /** STATE/cluster. */
  dir: string;
  publication: () => Promise<{ capacity: HostCapacity; use: HostUse }>;
  log: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  /** The daemon runs the member, the cluster API and the lease; a CLI process only talks to etcd. */
  serving: boolean;
  /** Called each time this host's membership is up (daemon start, init, join): publish what it holds. */
  started?: () => void;
  /**
   * Called at once (synchronously) when this host fences itself, before its lease can expire: the host's part
   * in failover (its failover candidates' guests are ended, see src/app/cluster-failover.ts).
   */
  onFenced?: (reason: string) => void;
  /** Work that runs while this host serves its membership (started after the lease, stopped before it ends). */
  background?: () => { stop: () => Promise<void> };
  /** Something about this host's instances changed (see `changed`). */
  onChanged?: () => void;
}

interface JoinRequest {
  id: string;
  secret: string;
  host: string;
  address: string;
  apiPort: number;
  csr: string;
  now: number;
}

interface JoinAnswer {
  clusterId: string;
  cert: string;
  etcdUrls: string[];
  external: boolean;
  member?: { initialCluster: string };
}

const HOST_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkHostName(field: string, name: string): string {
  if (!HOST_NAME.test(name)) throw invalid(field, `"${name}" is not a host name (lower-case letters, digits and '-', at most 63, not starting or ending with '-')`);
  return name;
}

function checkAddress(address: string): string {
  if (isIP(address) === 0 || address === '0.0.0.0' || address === '::' || address.startsWith('127.')) {
    throw invalid('address', `"${address}" is not an address other hosts can reach (give this host's IP address on the cluster network)`);
  }
  return address;
}

function checkPort(port: number | undefined): number {
  const p = port ?? DEFAULT_API_PORT;
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalid('api-port', `${p} is not a TCP port (1-65535)`);
  return p;
}

const urlHost = (address: string) => (address.includes(':') ? `[${address}]` : address);
/** How often a daemon lists the etcd members to learn their client URLs. */
const ETCD_URLS_LEARN_MS = 10_000;
/** A kv client replaced by one with other member URLs is closed this long after. */
const RETIRED_KV_CLOSE_MS = 30_000;

const envInt = (name: string) => {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : Number(v);
};

export class ClusterService {
  private cfg: ClusterConfig | undefined;
  private kvClient: EtcdKv | undefined;
  /** The member URLs `kvClient` was made with. */
  private kvUrls = '';
  private learnTimer: NodeJS.Timeout | undefined;
  private localKvClient: EtcdKv | undefined;
  private member: EtcdMemberProcess | undefined;
  private server: Server | undefined;
  private liveness: Liveness | undefined;
  private fence: FenceView | undefined;
  private running: { stop: () => Promise<void> } | undefined;
  private readonly revocations = new RevocationList();
  private readonly routes = new Map<string, PeerRoute>();
  private readonly files = new Map<string, PeerFileRoute>();
  private readonly o: ClusterServiceOptions;

  constructor(options: ClusterServiceOptions) {
    this.o = options;
    this.cfg = this.readConfig();
  }

  get configPath(): string {
    return join(this.o.dir, 'cluster.json');
  }

  get config(): ClusterConfig | undefined {
    return this.cfg;
  }

  /** This host's name in its cluster; undefined when standalone. */
  get host(): string | undefined {
    return this.cfg?.host;
  }

  /** Set while this host holds no lease (see `refuseWhileFenced`). */
  get fenced(): FenceView | undefined {
    return this.fence;
  }

  /**
   * Self-fencing. Once this host cannot renew its lease, the others will see it offline and may place work
   * elsewhere on the strength of that: it must not take new work itself (launches, starts, work forwarded to it)
   * until a lease is held and published again. Its failover candidates' guests are ended at once (`onFenced`),
   * so that another host may start them once the lease has expired; other guests are left running.
   */
  refuseWhileFenced(what: string): void {
    const f = this.fence;
    if (f === undefined) return;
    throw new VirtnodeError('INVALID_STATE', `${what}: host ${this.cfg?.host ?? '?'} is fenced since ${f.since} (${f.reason}): it takes no new work until it holds its cluster lease again`, {
      hint: 'check that this host reaches the etcd members (`virtnode cluster ls` on another host shows it offline meanwhile)',
    });
  }

  /** A route of this host's cluster API for other hosts (registered before the daemon starts serving). */
  route(path: string, route: PeerRoute): void {
    this.routes.set(path, route);
  }

  /** A GET route of this host's cluster API serving files named by one path segment after `prefix`. */
  fileRoute(prefix: string, route: PeerFileRoute): void {
    this.files.set(prefix, route);
  }

  /** This host's certificate and key and the cluster CA, for calls to other hosts. */
  peerTls(): PeerTls {
    const files = tlsFilesIn(this.tlsDir);
    return { ca: readFileSync(files.ca, 'utf8'), cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') };
  }

  /** A host's record, or a clear error naming `field` when the cluster has no such host. */
  async hostRecord(name: string, field = 'host'): Promise<HostRecord> {
    const entry = await this.kv().get(KEYS.host(name));
    if (entry === undefined) throw new VirtnodeError('NOT_FOUND', `${field}: no host ${name} in the cluster`, { field, hint: 'see `virtnode cluster ls`' });
    return JSON.parse(entry.value) as HostRecord;
  }

  /**
   * A host new work may go to: known, not evacuated, and alive (holding its lease). Each refusal names `field`
   * (`target` for a launch, `host` for a move) and carries `hint`.
   */
  async usableHostRecord(name: string, field: string, hint: string): Promise<HostRecord> {
    const record = await this.hostRecord(name, field);
    const host = field === 'host' ? name : `host ${name}`;
    if (record.evacuated === true) throw new VirtnodeError('CONFLICT', `${field}: ${host} is evacuated (out of placement)`, { field, hint });
    if ((await this.kv().get(KEYS.alive(name))) === undefined) throw new VirtnodeError('CONFLICT', `${field}: ${host} is offline (it holds no cluster lease)`, { field, hint });
    return record;
  }

  /** Whether a host holds its lease now. */
  async isOnline(name: string): Promise<boolean> {
    return (await this.kv().get(KEYS.alive(name))) !== undefined;
  }

  /** Calls another host's cluster API with this host's certificate (mutual TLS, cluster CA only). */
  async peer<T>(host: string | HostRecord, path: string, body: unknown, timeoutMs?: number): Promise<T> {
    const record = typeof host === 'string' ? await this.hostRecord(host) : host;
    return peerCall<T>(record.apiUrl, path, body, this.peerTls(), timeoutMs);
  }

  private readConfig(): ClusterConfig | undefined {
    if (!existsSync(this.configPath)) return undefined;
    return JSON.parse(readFileSync(this.configPath, 'utf8')) as ClusterConfig;
  }

  private saveConfig(cfg: ClusterConfig): void {
    writeFileAtomic(this.configPath, `${JSON.stringify(cfg, null, 2)}\n`, 0o600);
    this.cfg = cfg;
  }

  private requireConfig(): ClusterConfig {
    if (this.cfg === undefined) throw new VirtnodeError('INVALID_STATE', 'this host is not in a cluster', { hint: 'form one with `virtnode cluster init --address IP`, or join one with `virtnode cluster join TOKEN --address IP`' });
    return this.cfg;
  }

  private requireServing(what: string): void {
    if (!this.o.serving) {
      throw new VirtnodeError('INVALID_STATE', `cluster ${what} needs the virtnode daemon on this host (it runs the etcd member, the cluster API and the host's lease)`, { hint: 'start it with `virtnode daemon`' });
    }
  }

  /** The shared store (opened on first use; made again when the members' URLs changed, see learnEtcdUrls). */
  kv(): EtcdKv {
    const cfg = this.requireConfig();
    const urls = cfg.etcd.urls.join(',');
    if (this.kvClient !== undefined && this.kvUrls !== urls) {
      // Calls still under way on the old client finish there; it is closed once they surely have.
      const old = this.kvClient;
      this.kvClient = undefined;
      setTimeout(() => void old.close().catch(() => undefined), RETIRED_KV_CLOSE_MS).unref();
    }
    this.kvUrls = urls;
    this.kvClient ??= new EtcdKv({ urls: cfg.etcd.urls, tls: cfg.etcd.tls });
    return this.kvClient;
  }

  /**
   * The shared store through this host's own etcd member when it runs one (else as `kv`). The lease is kept alive
   * through it, so a host holds its lease exactly while its member is in the quorum: a client spreading its calls
   * over all members would lose its lease whenever another host's member is cut off, and fence a healthy host.
   * The daemon's cluster work (failover, disk ownership) goes through it too, never waiting on a cut-off member.
   */
  localKv(): EtcdKv {
    const cfg = this.requireConfig();
    if (cfg.etcd.member === undefined || !this.o.serving) return this.kv();
    this.localKvClient ??= new EtcdKv({ urls: [cfg.etcd.member.clientUrl], tls: cfg.etcd.tls });
    return this.localKvClient;
  }

  private get caDir(): string {
    return join(this.o.dir, 'ca');
  }

  private get tlsDir(): string {
    return join(this.o.dir, 'tls');
  }

  /** In the daemon: brings up this host's membership if it has one (member, cluster API, lease). */
  async start(): Promise<void> {
    const cfg = this.cfg;
    if (cfg === undefined || !this.o.serving) return;
    if (cfg.etcd.member !== undefined) {
      await ensureCrl(this.crlFile, tlsFilesIn(this.tlsDir));
      this.member = this.memberProcess(cfg);
      await this.member.start();
    }
    await this.learnEtcdUrls().catch((e: unknown) => this.o.log('warn', 'etcd members not listed', { err: String(e) }));
    await this.serve(this.cfg ?? cfg);
  }

  /**
   * Hosts that joined before later members did know only the members of their time: the client URLs of all
   * members are recorded in cluster.json (at start, and every ETCD_URLS_LEARN_MS while the daemon runs, since
   * members join through any host), so the shared state stays reachable while any member is, not only this
   * host's own (the first host knew only its own: its member's death cut it off from a healthy quorum).
   */
  private async learnEtcdUrls(): Promise<void> {
    const cfg = this.cfg;
    if (cfg === undefined || cfg.etcd.external) return;
    const urls = [...new Set((await this.kv().members()).flatMap((m) => m.clientUrls))].sort();
    const now = this.cfg;
    if (now === undefined || urls.length === 0 || urls.join(',') === [...now.etcd.urls].sort().join(',')) return;
    this.saveConfig({ ...now, etcd: { ...now.etcd, urls } });
    this.o.log('info', 'etcd member URLs learnt', { urls });
  }

  /** The revoked certificates as a CRL file, for this host's etcd member. */
  private get crlFile(): string {
    return join(this.o.dir, 'revoked.crl');
  }

  private memberProcess(cfg: ClusterConfig): EtcdMemberProcess {
    const m = cfg.etcd.member!;
    const election = envInt('VIRTNODE_ETCD_ELECTION_MS');
    return new EtcdMemberProcess(
      {
        name: cfg.host,
        dir: join(this.o.dir, 'etcd'),
        clientUrl: m.clientUrl,
        peerUrl: m.peerUrl,
        initialCluster: m.initialCluster,
        initialState: m.initialState,
        clusterToken: cfg.clusterId,
        tls: cfg.etcd.tls,
        crlFile: this.crlFile,
        ...(election === undefined ? {} : { electionTimeoutMs: election }),
      },
      {
        onExit: (code, signal) => this.o.log('warn', 'etcd member exited', { code, signal }),
        onRestart: (attempt) => this.o.log('info', 'etcd member restarted', { attempt }),
      },
    );
  }

  private async serve(cfg: ClusterConfig): Promise<void> {
    const tls = tlsFilesIn(this.tlsDir);
    // The revoked certificates: refused by the cluster API, and by this host's etcd member through its CRL file.
    await this.revocations
      .start(this.localKv(), async (all: Revocation[]) => {
        if (cfg.etcd.member !== undefined) await writeCrl(this.crlFile, tls, all);
      })
      .catch((e: unknown) => this.o.log('warn', 'revoked certificates not read (etcd did not answer)', { err: String(e) }));
    this.server = await startPeerServer({
      refused: (serial) => {
        const r = this.revocations.has(serial);
        return r === undefined ? undefined : `it was revoked at ${r.revokedAt}, when host ${r.host} was removed from the cluster`;
      },
      host: cfg.address,
      port: cfg.apiPort,
      tls,
      routes: {
        '/v1/join': { anonymous: true, handle: (body) => this.admit(body) },
        '/v1/ping': { handle: async (_body, caller) => ({ host: cfg.host, caller: caller.host }) },
        ...Object.fromEntries(this.routes),
      },
      files: Object.fromEntries(this.files),
    });
    this.liveness = new Liveness({
      kv: this.localKv(),
      host: cfg.host,
      ttlSeconds: cfg.leaseTtlSeconds,
      labels: cfg.labels,
      publication: this.o.publication,
      log: this.o.log,
      onLost: (reason) => {
        this.fence ??= { since: new Date().toISOString(), reason };
        try {
          this.o.onFenced?.(reason);
        } catch (e) {
          this.o.log('error', 'fencing: ending the failover candidates failed', { err: String(e) });
        }
        this.o.log('error', 'fenced: cluster lease lost; this host takes no new work until it holds a lease again (failover candidates were stopped, other guests keep running)', { reason });
      },
      onPublished: () => {
        if (this.fence === undefined) return;
        this.o.log('info', 'fence lifted: cluster lease held and published again', { fencedSince: this.fence.since });
        this.fence = undefined;
      },
    });
    await this.liveness.start();
    clearInterval(this.learnTimer);
    this.learnTimer = setInterval(() => void this.learnEtcdUrls().catch(() => undefined), ETCD_URLS_LEARN_MS);
    this.learnTimer.unref();
    this.o.started?.();
    this.running = this.o.background?.();
  }

  /** Publish capacity and use again now (an instance started or stopped). */
  changed(): void {
    void this.liveness?.publish().catch(() => undefined);
    if (this.liveness !== undefined) this.o.onChanged?.();
  }

  async stop(): Promise<void> {
    clearInterval(this.learnTimer);
    this.learnTimer = undefined;
    await this.running?.stop();
    this.running = undefined;
    await this.liveness?.stop();
    this.liveness = undefined;
    await this.revocations.stop();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
    await this.kvClient?.close();
    this.kvClient = undefined;
    await this.localKvClient?.close();
    this.localKvClient = undefined;
    await this.member?.stop();
    this.member = undefined;
  }

  async init(input: { host?: string; address: string; apiPort?: number; labels?: Record<string, string>; etcd?: ExternalEtcd }): Promise<ClusterStatus> {
    this.requireServing('init');
    if (this.cfg !== undefined) throw new VirtnodeError('CONFLICT', `this host is in cluster ${this.cfg.clusterId} already (as ${this.cfg.host})`);
    const address = checkAddress(input.address);
    const host = checkHostName('host', input.host ?? hostname().split('.')[0]!.toLowerCase());
    const apiPort = checkPort(input.apiPort);
    if (input.etcd !== undefined) for (const f of ['ca', 'cert', 'key'] as const) if (!existsSync(input.etcd[f])) throw invalid(`etcd-${f}`, `${input.etcd[f]} does not exist`);
    const clusterId = randomUUID();
    mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    try {
      await createCa(this.caDir, clusterId);
      const tls = await issueHostCert(this.caDir, this.tlsDir, host, address);
      const peerUrl = `https://${urlHost(address)}:${ETCD_PEER_PORT}`;
      const clientUrl = `https://${urlHost(address)}:${ETCD_CLIENT_PORT}`;
      const cfg: ClusterConfig = {
        clusterId,
        host,
        address,
        apiPort,
        labels: input.labels ?? {},
        etcd:
          input.etcd === undefined
            ? { urls: [clientUrl], tls, member: { clientUrl, peerUrl, initialCluster: `${host}=${peerUrl}`, initialState: 'new' }, external: false }
            : { urls: input.etcd.urls, tls: { ca: input.etcd.ca, cert: input.etcd.cert, key: input.etcd.key }, external: true },
        leaseTtlSeconds: envInt('VIRTNODE_CLUSTER_LEASE_TTL') ?? 10,
      };
      this.cfg = cfg;
      if (cfg.etcd.member !== undefined) {
        await ensureCrl(this.crlFile, tls);
        this.member = this.memberProcess(cfg);
        await this.member.start();
      }
      const record: HostRecord = {
        name: host,
        address,
        apiUrl: `https://${urlHost(address)}:${apiPort}`,
        etcdMember: !cfg.etcd.external,
        ...(cfg.etcd.external ? {} : { etcdClientUrl: clientUrl }),
        joinedAt: new Date().toISOString(),
        certSerial: certSerial(readFileSync(tls.cert, 'utf8')),
      };
      const won = await this.kv().txn(
        [{ key: KEYS.meta, modRevision: 0 }],
        [
          { put: KEYS.meta, value: JSON.stringify({ clusterId, createdAt: record.joinedAt, createdBy: host }) },
          { put: KEYS.host(host), value: JSON.stringify(record) },
        ],
      );
      if (!won.won) throw new VirtnodeError('CONFLICT', `the etcd at ${cfg.etcd.urls.join(',')} holds a virtnode cluster already`, { hint: 'join it with a token from one of its hosts (`virtnode cluster add`)' });
      this.saveConfig(cfg);
      await this.serve(cfg);
    } catch (e) {
      await this.stop();
      this.cfg = undefined;
      for (const d of ['ca', 'tls', 'etcd', 'cluster.json', 'revoked.crl']) rmSync(join(this.o.dir, d), { recursive: true, force: true });
      throw e;
    }
    return this.status();
  }

  /** A single-use token for HOST to join with, valid TOKEN_TTL_SECONDS. */
  async add(name: string): Promise<{ host: string; token: string; expiresAt: string }> {
    const cfg = this.requireConfig();
    const host = checkHostName('host', name);
    if (!existsSync(caKeyPath(this.caDir))) throw new VirtnodeError('INVALID_STATE', 'this host does not hold the cluster CA key', { hint: 'run `virtnode cluster add` on the host that ran `cluster init`' });
    const kv = this.kv();
    if ((await kv.get(KEYS.host(host))) !== undefined) throw new VirtnodeError('CONFLICT', `host ${host} is in the cluster already`, { field: 'host' });
    const { id, secret } = newTokenSecret();
    const ttl = envInt('VIRTNODE_CLUSTER_TOKEN_TTL') ?? TOKEN_TTL_SECONDS;
    const expiresAt = new Date(Date.now() + ttl * 1000).toISOString();
    const record: TokenRecord = { host, secretSha256: secretHash(secret), expiresAt, issuedBy: cfg.host };
    // The record goes with a lease that nobody renews: etcd deletes it when the token expires.
    const lease = await kv.lease(ttl, () => undefined);
    lease.release();
    await kv.txn([], [{ put: KEYS.token(id), value: JSON.stringify(record), lease }]);
    const caPem = readFileSync(join(this.caDir, 'ca.crt'), 'utf8');
    const token = encodeJoinToken({ clusterId: cfg.clusterId, id, secret, host, caFingerprint: fingerprint(caPem), apiUrl: `https://${urlHost(cfg.address)}:${cfg.apiPort}`, expiresAt });
    return { host, token, expiresAt };
  }

  /** On the issuing host: checks a join request and, if it holds, admits the host (certificate, etcd member). */
  private async admit(body: unknown): Promise<JoinAnswer> {
    const cfg = this.requireConfig();
    const req = body as Partial<JoinRequest>;
    for (const k of ['id', 'secret', 'host', 'address', 'csr'] as const) if (typeof req[k] !== 'string') throw invalid(k, 'missing');
    if (typeof req.now !== 'number' || typeof req.apiPort !== 'number') throw invalid('now', 'missing');
    const r = req as JoinRequest;
    const skew = r.now - Date.now();
    if (Math.abs(skew) > MAX_CLOCK_SKEW_MS) {
      throw new VirtnodeError('INVALID', `clock: the joining host's clock is ${Math.round(skew / 1000)} s off ${cfg.host}'s (at most ${MAX_CLOCK_SKEW_MS / 1000} s allowed)`, {
        field: 'clock',
        hint: 'set the clock right (NTP) and join again; the token is still valid',
      });
    }
    checkHostName('host', r.host);
    checkAddress(r.address);
    const kv = this.kv();
    const tokenEntry = await kv.get(KEYS.token(r.id));
    const unknown = new VirtnodeError('UNAUTHORIZED', 'token: the join token is unknown, used or expired', { field: 'token', hint: 'print a new one with `virtnode cluster add HOSTNAME`' });
    if (tokenEntry === undefined) throw unknown;
    const tok = JSON.parse(tokenEntry.value) as TokenRecord;
    if (!secretMatches(r.secret, tok.secretSha256) || tok.host !== r.host) throw new VirtnodeError('UNAUTHORIZED', 'token: the join token is forged (its secret does not match)', { field: 'token' });
    if (Date.parse(tok.expiresAt) < Date.now()) throw new VirtnodeError('UNAUTHORIZED', `token: the join token expired at ${tok.expiresAt}`, { field: 'token', hint: 'print a new one with `virtnode cluster add HOSTNAME`' });
    const hostKey = KEYS.host(r.host);
    if ((await kv.get(hostKey)) !== undefined) throw new VirtnodeError('CONFLICT', `host ${r.host} is in the cluster already`);
    const hosts = (await kv.list(KEYS.hosts)).entries.map((e) => JSON.parse(e.value) as HostRecord);
    const member = !cfg.etcd.external && hosts.filter((h) => h.etcdMember).length < MAX_ETCD_MEMBERS;
    const cert = await signHostCsr(this.caDir, r.csr, r.host, r.address);
    const clientUrl = `https://${urlHost(r.address)}:${ETCD_CLIENT_PORT}`;
    const peerUrl = `https://${urlHost(r.address)}:${ETCD_PEER_PORT}`;
    const record: HostRecord = {
      name: r.host,
      address: r.address,
      apiUrl: `https://${urlHost(r.address)}:${r.apiPort}`,
      etcdMember: member,
      ...(member ? { etcdClientUrl: clientUrl } : {}),
      joinedAt: new Date().toISOString(),
      certSerial: certSerial(cert),
    };
    // Consumed and recorded at once, only if nobody used the token or took the name in between.
    const taken = await kv.txn(
      [
        { key: KEYS.token(r.id), modRevision: tokenEntry.modRevision },
        { key: hostKey, modRevision: 0 },
      ],
      [{ delete: KEYS.token(r.id) }, { put: hostKey, value: JSON.stringify(record) }],
    );
    if (!taken.won) throw unknown;
    let members: EtcdMember[] = await kv.members();
    let initialCluster: string | undefined;
    if (member) {
      try {
        const added = await this.addMemberWhenHealthy(kv, peerUrl);
        members = added.members;
        initialCluster = members.map((m) => `${m.id === added.member.id || m.name === '' ? r.host : m.name}=${m.peerUrls[0]}`).join(',');
      } catch (e) {
        // Put things back as they were: the token usable again, the host not recorded.
        await kv.txn([], [{ delete: hostKey }, { put: KEYS.token(r.id), value: tokenEntry.value }]).catch(() => undefined);
        throw e;
      }
    }
    const etcdUrls = cfg.etcd.external ? cfg.etcd.urls : [...new Set([...members.flatMap((m) => m.clientUrls), ...(member ? [clientUrl] : [])])].sort();
    if (!cfg.etcd.external) this.saveConfig({ ...cfg, etcd: { ...cfg.etcd, urls: etcdUrls } });
    this.o.log('info', 'host joined the cluster', { host: r.host, address: r.address, etcdMember: member });
    return { clusterId: cfg.clusterId, cert, etcdUrls, external: cfg.etcd.external, ...(initialCluster === undefined ? {} : { member: { initialCluster } }) };
  }

  /**
   * etcd refuses a new member until every member has been connected for a few seconds (its strict reconfiguration
   * check: "unhealthy cluster"), as right after the previous join. That passes by itself: try again for a while.
   */
  private async addMemberWhenHealthy(kv: EtcdKv, peerUrl: string): Promise<{ member: EtcdMember; members: EtcdMember[] }> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await kv.addMember(peerUrl);
      } catch (e) {
        if (!String((e as Error).message).includes('unhealthy cluster') || Date.now() > deadline) throw e;
        // A refusal costs etcd little; asking often ends the wait soon after its 5 s have passed.
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  /** On the new host: joins with a token from `cluster add`. Any refusal leaves this host as it was. */
  async join(input: { token: string; address: string; apiPort?: number; labels?: Record<string, string>; etcd?: Omit<ExternalEtcd, 'urls'> }): Promise<ClusterStatus> {
    this.requireServing('join');
    if (this.cfg !== undefined) throw new VirtnodeError('CONFLICT', `this host is in cluster ${this.cfg.clusterId} already (as ${this.cfg.host})`);
    const token = decodeJoinToken(input.token);
    const address = checkAddress(input.address);
    const apiPort = checkPort(input.apiPort);
    const caPem = await fetchPinnedCa(token.apiUrl, token.caFingerprint);
    mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    const staging = join(this.o.dir, 'tls.joining');
    rmSync(staging, { recursive: true, force: true });
    try {
      const csr = await createKeyAndCsr(staging, token.host);
      const answer = await peerCall<JoinAnswer>(token.apiUrl, '/v1/join', { id: token.id, secret: token.secret, host: token.host, address, apiPort, csr, now: Date.now() } satisfies JoinRequest, { ca: caPem });
      if (answer.external && input.etcd === undefined) {
        throw new VirtnodeError('INVALID', 'etcd-cert: this cluster uses an external etcd: give --etcd-ca, --etcd-cert and --etcd-key for it', { field: 'etcd-cert' });
      }
      const files = tlsFilesIn(staging);
      writeFileSync(files.ca, caPem, { mode: 0o644 });
      writeFileSync(files.cert, answer.cert, { mode: 0o644 });
      rmSync(this.tlsDir, { recursive: true, force: true });
      renameSync(staging, this.tlsDir);
      const tls = tlsFilesIn(this.tlsDir);
      const clientUrl = `https://${urlHost(address)}:${ETCD_CLIENT_PORT}`;
      const peerUrl = `https://${urlHost(address)}:${ETCD_PEER_PORT}`;
      const cfg: ClusterConfig = {
        clusterId: answer.clusterId,
        host: token.host,
        address,
        apiPort,
        labels: input.labels ?? {},
        etcd: answer.external
          ? { urls: answer.etcdUrls, tls: { ca: input.etcd!.ca, cert: input.etcd!.cert, key: input.etcd!.key }, external: true }
          : { urls: answer.etcdUrls, tls, external: false, ...(answer.member === undefined ? {} : { member: { clientUrl, peerUrl, initialCluster: answer.member.initialCluster, initialState: 'existing' as const } }) },
        leaseTtlSeconds: envInt('VIRTNODE_CLUSTER_LEASE_TTL') ?? 10,
      };
      this.saveConfig(cfg);
      await this.start();
    } catch (e) {
      rmSync(staging, { recursive: true, force: true });
      throw e;
    }
    return this.status();
  }

  async status(): Promise<ClusterStatus> {
    const cfg = this.cfg;
    if (cfg === undefined) return { enabled: false, hosts: [], etcd: { external: false, members: [] } };
    const kv = this.kv();
    const fenced = this.fence;
    const read = Promise.all([kv.list(KEYS.hosts), kv.list(KEYS.alives), kv.members(), kv.leader()]);
    // A fenced host most likely does not reach etcd: it says what it knows, that it is fenced, rather than fail.
    const got = fenced === undefined ? await read : await read.catch(() => undefined);
    if (got === undefined) return { enabled: true, clusterId: cfg.clusterId, host: cfg.host, ...(fenced === undefined ? {} : { fenced }), hosts: [], etcd: { external: cfg.etcd.external, members: [] } };
    const [hosts, alive, members, leaderId] = got;
    const aliveByName = new Map(alive.entries.map((e) => [e.key.slice(KEYS.alives.length), JSON.parse(e.value) as AliveRecord]));
    const views: ClusterHostView[] = hosts.entries.map((e) => {
      const h = JSON.parse(e.value) as HostRecord;
      const a = aliveByName.get(h.name);
      const state: HostState = h.evacuated === true ? 'evacuated' : a === undefined ? 'offline' : 'online';
      return { name: h.name, address: h.address, state, etcdMember: h.etcdMember, labels: a?.labels ?? {}, ...(a === undefined ? {} : { capacity: a.capacity, use: a.use, updatedAt: a.updatedAt }) };
    });
    const leader = members.find((m) => m.id === leaderId);
    return {
      enabled: true,
      clusterId: cfg.clusterId,
      host: cfg.host,
      ...(fenced === undefined ? {} : { fenced }),
      hosts: views,
      etcd: {
        external: cfg.etcd.external,
        ...(leader === undefined ? {} : { leader: leader.name }),
        members: members.map((m) => ({ name: m.name, id: m.id, clientUrls: m.clientUrls, leader: m.id === leaderId })),
      },
    };
  }

  /**
   * Quorum-loss recovery, on the last surviving etcd member's host: its member is started once with
   * `--force-new-cluster` (a one-member cluster on its own data: every key as this member last had it), then again
   * as usual; this host's cluster.json names only it. Refused while etcd has its quorum (that would split the
   * cluster in two). The lost hosts stay recorded (offline) until `cluster remove`; one that comes back must be
   * removed and join again, its etcd member being no longer of this cluster.
   */
  async recover(): Promise<ClusterStatus> {
    this.requireServing('recover');
    const cfg = this.requireConfig();
    const m = cfg.etcd.member;
    if (cfg.etcd.external || m === undefined || this.member === undefined) {
      throw new VirtnodeError('INVALID_STATE', `recover: this host (${cfg.host}) runs no etcd member of the cluster`, {
        hint: cfg.etcd.external ? 'an external etcd is recovered with its own tools' : 'run it on the host whose etcd member survived',
      });
    }
    // Healthy once in 5 s (an election takes less): the quorum stands.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (await etcdHealthy(m.clientUrl, cfg.etcd.tls, 1000)) {
        throw new VirtnodeError('CONFLICT', 'recover: etcd has its quorum: there is nothing to recover (forcing a new cluster now would split it in two)', {
          hint: 'a host gone for good is removed with `virtnode cluster remove HOST --force`',
        });
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    this.o.log('warn', 'quorum-loss recovery: restarting this etcd member as a one-member cluster (--force-new-cluster)', { host: cfg.host });
    await this.member.stop();
    const forced = new EtcdMemberProcess({ ...this.member.config, forceNewCluster: true });
    try {
      await forced.start(60_000);
    } finally {
      await forced.stop();
    }
    const member = { ...m, initialCluster: `${cfg.host}=${m.peerUrl}`, initialState: 'existing' as const };
    this.saveConfig({ ...cfg, etcd: { ...cfg.etcd, urls: [m.clientUrl], member } });
    this.member = this.memberProcess(this.cfg!);
    await this.member.start(60_000);
    // The shared client knew the lost members' URLs; the lease and the rest go through this host's own member.
    const old = this.kvClient;
    this.kvClient = undefined;
    await old?.close().catch(() => undefined);
    this.o.log('info', 'quorum-loss recovery done: this host runs the cluster\'s only etcd member', { host: cfg.host });
    return this.status();
  }

  /**
   * Forgets a host: its record, its live record, and its etcd member. An online host is refused unless `force`
   * (its daemon would publish itself again); a host gone for good is removed with `force` while it is offline too,
   * which is how its etcd member leaves the quorum.
   */
  async remove(name: string, force: boolean): Promise<ClusterStatus> {
    const cfg = this.requireConfig();
    const host = checkHostName('host', name);
    if (host === cfg.host) throw invalid('host', `${host} is this host: remove it from another host of the cluster`);
    const kv = this.kv();
    const entry = await kv.get(KEYS.host(host));
    if (entry === undefined) throw new VirtnodeError('NOT_FOUND', `no host ${host} in the cluster`, { field: 'host', hint: 'see `virtnode cluster ls`' });
    const alive = await kv.get(KEYS.alive(host));
    if (alive !== undefined && !force) throw new VirtnodeError('CONFLICT', `host ${host} is online: stop its daemon first, or give --force`, { field: 'host' });
    const record = JSON.parse(entry.value) as HostRecord;
    if (record.etcdMember && !cfg.etcd.external) {
      const members = await kv.members();
      const m = members.find((x) => x.name === host || (record.etcdClientUrl !== undefined && x.clientUrls.includes(record.etcdClientUrl)));
      if (m !== undefined) await kv.removeMember(m.id);
    }
    // Its certificate is revoked in the same transaction: the cluster API and etcd refuse it from then on.
    const revocation: Revocation | undefined = record.certSerial === undefined ? undefined : { serial: record.certSerial, host, revokedAt: new Date().toISOString(), by: cfg.host };
    const done = await kv.txn(
      [{ key: KEYS.host(host), modRevision: entry.modRevision }],
      [{ delete: KEYS.host(host) }, { delete: KEYS.alive(host) }, ...(revocation === undefined ? [] : [revocationWrite(revocation)])],
    );
    if (!done.won) throw new VirtnodeError('CONFLICT', `host ${host} changed while it was being removed: try again`);
    await forgetHeldImages(kv, host);
    // Failover's marks for the host (copies it was to forget when back) go with it.
    const marks = (await kv.list(KEYS.leftBehindOn(host))).entries;
    if (marks.length > 0) await kv.txn([], marks.map((e) => ({ delete: e.key })));
    if (revocation === undefined) this.o.log('warn', 'host removed, but its certificate is not known (it joined with an older virtnode): it was not revoked', { host });
    await forgetHostNetworkRecords(kv, host);
    this.o.log('info', 'host removed from the cluster', { host, ...(revocation === undefined ? {} : { revokedSerial: revocation.serial }) });
    return this.status();
  }
}
