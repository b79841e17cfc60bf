import type { Db } from '../store/db.ts';
import type { EventBus } from './events.ts';

/**
 * A serialized response (GET /instances) kept between changes, so many clients listing 1,000 instances cost one
 * build, not one each. It is rebuilt when:
 * - the database changed: this daemon's own writes (`total_changes()`) or another process's commit
 *   (`PRAGMA data_version`): every instance, NIC, policy and state change is a write, and a lifecycle call
 *   writes before it returns, so a list asked for after it is never stale;
 * - an event was published (the supervisor's observations, operations);
 * - it is older than `maxAgeMs`: what lives outside the database (dnsmasq's lease files) is at most that stale.
 * Concurrent requests while it is rebuilt share the one build.
 */
export class ResponseCache {
  private readonly versionQuery;
  private readonly maxAgeMs: number;
  private cached: { version: string; at: number; body: Buffer } | undefined;
  private building: { version: string; body: Promise<Buffer> } | undefined;
  private generation = 0;

  constructor(db: Db, events: EventBus, options: { maxAgeMs: number }) {
    this.versionQuery = db.prepare('SELECT total_changes() AS own, (SELECT data_version FROM pragma_data_version()) AS others');
    this.maxAgeMs = options.maxAgeMs;
    events.subscribe(() => this.invalidate());
  }

  invalidate(): void {
    this.generation++;
    this.cached = undefined;
    this.building = undefined;
  }

  async get(build: () => Promise<Buffer>): Promise<Buffer> {
    const version = this.version();
    const now = Date.now();
    if (this.cached !== undefined && this.cached.version === version && now - this.cached.at < this.maxAgeMs) return this.cached.body;
    if (this.building !== undefined && this.building.version === version) return this.building.body;
    const generation = this.generation;
    // The version read before the build: a change while it runs makes the next request build again.
    const body = build();
    const entry = { version, body };
    this.building = entry;
    try {
      const result = await body;
      if (this.generation === generation && this.building === entry) this.cached = { version, at: now, body: result };
      return result;
    } finally {
      if (this.building === entry) this.building = undefined;
    }
  }

  private version(): string {
    const row = this.versionQuery.get() as { own: number; others: number };
    return `${row.own}:${row.others}`;
  }
}
