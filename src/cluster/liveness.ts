/**
 * A host is alive while its lease is: the daemon keeps one and publishes its capacity, use and labels under it.
 * When the lease cannot be renewed (etcd unreachable), the record goes with it and the host shows offline; the
 * daemon keeps trying to get a new lease and publishes again once etcd answers.
 */
import type { Kv, KvLease } from './kv.ts';
import { type AliveRecord, type HostCapacity, type HostUse, KEYS } from './model.ts';

export interface LivenessOptions {
  kv: Kv;
  host: string;
  ttlSeconds: number;
  labels: Record<string, string>;
  publication: () => Promise<{ capacity: HostCapacity; use: HostUse }>;
  /** How often capacity and use are published again (default 15 s). */
  refreshMs?: number;
  log: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
  /** The lease could not be renewed in time: from now on other hosts may see this one offline. */
  onLost?: (reason: string) => void;
  /** A lease is held and this host's record was published under it (called after every publication). */
  onPublished?: () => void;
}

export class Liveness {
  private lease: KvLease | undefined;
  private since = new Date().toISOString();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly o: LivenessOptions;

  constructor(options: LivenessOptions) {
    this.o = options;
  }

  /** Takes a lease and publishes; retries in the background if etcd does not answer now. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.renew().catch((e: unknown) => {
      this.o.log('warn', 'cluster lease not taken, retrying', { err: String(e) });
      this.schedule(2000);
    });
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      if (this.lease === undefined) await this.renew();
      else await this.publish();
    } catch (e) {
      this.o.log('warn', 'cluster liveness update failed', { err: String(e) });
      this.schedule(2000);
    }
  }

  private async renew(): Promise<void> {
    const lease = await this.o.kv.lease(this.o.ttlSeconds, (reason) => {
      if (this.lease !== lease) return;
      this.lease = undefined;
      this.o.log('warn', 'cluster lease lost: this host shows offline until etcd answers again', { reason });
      this.o.onLost?.(reason);
      this.schedule(1000);
    });
    if (this.stopped) {
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.lease = lease;
    this.since = new Date().toISOString();
    await this.publish();
    this.o.log('info', 'cluster lease taken', { lease: lease.id, ttlSeconds: this.o.ttlSeconds });
  }

  /** Publishes capacity and use now (also after a change, such as an instance started). */
  async publish(): Promise<void> {
    const lease = this.lease;
    if (lease === undefined || this.stopped) return;
    const { capacity, use } = await this.o.publication();
    const record: AliveRecord = { name: this.o.host, since: this.since, updatedAt: new Date().toISOString(), capacity, use, labels: this.o.labels };
    await this.o.kv.txn([], [{ put: KEYS.alive(this.o.host), value: JSON.stringify(record), lease }]);
    if (this.lease === lease) this.o.onPublished?.();
    this.schedule(this.o.refreshMs ?? 15_000);
  }

  /** A clean stop: the lease is revoked, so the host shows offline at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const lease = this.lease;
    this.lease = undefined;
    await lease?.revoke().catch(() => undefined);
  }
}
