/** The cluster's shared state (kv.ts) on etcd v3, through the npm client `etcd3` (gRPC, pure JavaScript). */
import { readFileSync } from 'node:fs';
import { Etcd3, type IKeyValue, type IOptions, type IRequestOp, type Lease } from 'etcd3';
import { VirtnodeError } from '../lib/errors.ts';
import type { Kv, KvEntry, KvEvent, KvGuard, KvLease, KvTxnResult, KvWatch, KvWrite } from './kv.ts';

export interface EtcdTls {
  /** PEM files: the CA that signed the members' certificates, and this client's certificate and key. */
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdEndpoints {
  /** Client URLs of the members (https:// when `tls` is given). */
  urls: readonly string[];
  tls?: EtcdTls;
  /** Each call's deadline (default 5 s): an unreachable etcd is an error, never a hang. */
  callTimeoutMs?: number;
}

export interface EtcdMember {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** Membership and health of the etcd cluster itself (who is leader, adding and removing members). */
export interface EtcdAdmin {
  members(): Promise<EtcdMember[]>;
  /** The leader's member id as the members answering say, or undefined if none answers. */
  leader(): Promise<string | undefined>;
  addMember(peerUrl: string): Promise<{ member: EtcdMember; members: EtcdMember[] }>;
  removeMember(id: string): Promise<void>;
}

const bytes = (s: string) => Buffer.from(s, 'utf8');

const PASS_THROUGH = { execute: <T>(fn: () => Promise<T> | T) => Promise.resolve().then(fn) };

function entryOf(kv: IKeyValue): KvEntry {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    lease: kv.lease,
  };
}

/** The first key after every key with this prefix (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix, 'utf8');
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function memberOf(m: { ID: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner?: boolean }): EtcdMember {
  return { id: m.ID, name: m.name, peerUrls: m.peerURLs, clientUrls: m.clientURLs, isLearner: m.isLearner === true };
}

export class EtcdKv implements Kv, EtcdAdmin {
  readonly client: Etcd3;
  private readonly where: string;
  private readonly timeoutMs: number;
  private readonly leases = new Set<Lease>();

  constructor(endpoints: EtcdEndpoints) {
    if (endpoints.urls.length === 0) throw new VirtnodeError('INVALID', 'etcd: no endpoint URL given', { field: 'etcd' });
    this.where = endpoints.urls.join(',');
    this.timeoutMs = endpoints.callTimeoutMs ?? 5000;
    const options: IOptions = {
      hosts: [...endpoints.urls],
      dialTimeout: this.timeoutMs,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
      // No circuit breaker per member: after three failures (a member-add waiting for its new member, a leader
      // election) it refused every call for 5 s, to the only member a client may know. Calls still retry on
      // another member (the client's global policy); each has its deadline.
      faultHandling: { host: () => PASS_THROUGH as unknown as NonNullable<NonNullable<IOptions['faultHandling']>['host']> extends (h: string) => infer P ? P : never },
    };
    if (endpoints.tls !== undefined) {
      options.credentials = {
        rootCertificate: readFileSync(endpoints.tls.ca),
        certChain: readFileSync(endpoints.tls.cert),
        privateKey: readFileSync(endpoints.tls.key),
      };
    }
    this.client = new Etcd3(options);
  }

  /** Every failure to reach etcd is one clear error naming the endpoints; nothing was written. */
  private async call<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if (e instanceof VirtnodeError) throw e;
      const detail = e instanceof Error ? e.message : String(e);
      throw new VirtnodeError('TIMEOUT', `etcd at ${this.where} did not answer (${what}): ${detail}`, {
        cause: e,
        hint: 'check that the etcd members run and are reachable (virtnode cluster ls)',
      });
    }
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const res = await this.call('get', () => this.client.kv.range({ key: bytes(key) }));
    const kv = res.kvs[0];
    return kv === undefined ? undefined : entryOf(kv);
  }

  async list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    const res = await this.call('list', () => this.client.kv.range({ key: bytes(prefix), range_end: prefixEnd(prefix), sort_target: 'Key', sort_order: 'Ascend' }));
    return { entries: res.kvs.map(entryOf), revision: Number(res.header.revision) };
  }

  async txn(guards: readonly KvGuard[], writes: readonly KvWrite[]): Promise<KvTxnResult> {
    const success: IRequestOp[] = writes.map((w) =>
      'put' in w ? { request_put: { key: bytes(w.put), value: bytes(w.value), lease: w.lease?.id ?? '0' } } : { request_delete_range: { key: bytes(w.delete) } },
    );
    const compare = guards.map((g) => ({ key: bytes(g.key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: String(g.modRevision) }));
    const res = await this.call('transaction', () => this.client.kv.txn({ compare, success, failure: [] }));
    return { won: res.succeeded, revision: Number(res.header.revision) };
  }

  async lease(ttlSeconds: number, onLost: (reason: string) => void): Promise<KvLease> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2) throw new VirtnodeError('INVALID', `lease TTL: ${ttlSeconds} s is not a whole number of at least 2 seconds`, { field: 'ttl' });
    const lease = this.client.lease(ttlSeconds);
    const id = await this.call('lease grant', () => lease.grant());
    this.leases.add(lease);
    // etcd3 reports a loss only after twice the TTL without contact; by then etcd has long expired the lease and
    // another host may act on that. Here "lost" comes before the expiry etcd sees: no renewal acknowledged for
    // 2/3 of the TTL, counted from when the last acknowledged renewal was sent.
    let lastAcked = Date.now();
    let ended = false;
    const end = (reason: string, notify: boolean) => {
      if (ended) return;
      ended = true;
      clearInterval(watchdog);
      this.leases.delete(lease);
      lease.release();
      if (notify) onLost(reason);
    };
    // The stream answers its renewals in order: an answer acknowledges the oldest renewal not yet answered (one
    // held up on a dead leader is answered late, and must not count as the newest).
    let unanswered: number[] = [];
    lease.on('keepaliveEstablished', () => (unanswered = []));
    lease.on('keepaliveFired', () => unanswered.push(Date.now()));
    lease.on('keepaliveSucceeded', () => (lastAcked = Math.max(lastAcked, unanswered.shift() ?? lastAcked)));
    lease.on('lost', (err) => end(`lease ${id} lost: ${err.message}`, true));
    const limitMs = (ttlSeconds * 1000 * 2) / 3;
    // The keepalive stream renews one request at a time: one forwarded to a leader that just died blocks it until
    // etcd's request timeout (seconds), long after a new leader was elected. A renewal missed is probed again on
    // fresh calls (which reach the new leader), so a healthy host keeps its lease through an election. Probes
    // overlap: one sent before the election ended hangs on the dead leader until its deadline, and waiting for it
    // before sending the next could use up the little time left before the watchdog's limit.
    const probeAfterMs = (ttlSeconds * 1000) / 3 + 500;
    const probeEveryMs = 500;
    const probeDeadlineMs = Math.min(1500, limitMs / 2);
    let lastProbe = 0;
    const probe = () => {
      const sent = Date.now();
      if (ended || sent - lastProbe < probeEveryMs) return;
      lastProbe = sent;
      lease.keepaliveOnce({ deadline: sent + probeDeadlineMs }).then(
        () => (lastAcked = Math.max(lastAcked, sent)),
        () => undefined,
      );
    };
    const watchdog = setInterval(() => {
      const since = Date.now() - lastAcked;
      if (since > limitMs) end(`lease ${id}: no renewal acknowledged for ${Math.round(since / 100) / 10} s (TTL ${ttlSeconds} s)`, true);
      else if (since > probeAfterMs) probe();
    }, 250);
    watchdog.unref();
    return {
      id,
      ttlSeconds,
      revoke: async () => {
        end('revoked', false);
        await this.call('lease revoke', () => this.client.leaseClient.leaseRevoke({ ID: id }));
      },
      release: () => end('released', false),
    };
  }

  async watch(prefix: string, onEvent: (event: KvEvent) => void, fromRevision?: number): Promise<KvWatch> {
    let builder = this.client.watch().prefix(prefix);
    if (fromRevision !== undefined) builder = builder.startRevision(String(fromRevision));
    const watcher = await this.call('watch', () => builder.create());
    watcher.on('put', (kv) => onEvent({ type: 'put', entry: entryOf(kv) }));
    watcher.on('delete', (kv) => onEvent({ type: 'delete', key: kv.key.toString('utf8'), modRevision: Number(kv.mod_revision) }));
    // The client reconnects a broken watch stream by itself, from the last revision it delivered.
    watcher.on('error', () => undefined);
    return { cancel: () => watcher.cancel() };
  }

  async members(): Promise<EtcdMember[]> {
    const res = await this.call('member list', () => this.client.cluster.memberList({}));
    return res.members.map(memberOf);
  }

  async leader(): Promise<string | undefined> {
    try {
      const res = await this.client.maintenance.status({});
      return res.leader === '0' ? undefined : res.leader;
    } catch {
      return undefined;
    }
  }

  async addMember(peerUrl: string): Promise<{ member: EtcdMember; members: EtcdMember[] }> {
    const res = await this.call('member add', () => this.client.cluster.memberAdd({ peerURLs: [peerUrl] }));
    return { member: memberOf(res.member), members: res.members.map(memberOf) };
  }

  async removeMember(id: string): Promise<void> {
    await this.call('member remove', () => this.client.cluster.memberRemove({ ID: id }));
  }

  async close(): Promise<void> {
    for (const lease of this.leases) lease.release();
    this.leases.clear();
    this.client.close();
  }
}
