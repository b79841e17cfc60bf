import type { RestartPolicy } from '../instances/model.ts';
import type { Db } from './db.ts';

export type { RestartPolicy } from '../instances/model.ts';

export const RESTART_POLICIES: readonly RestartPolicy[] = ['no', 'on-failure', 'always'];

/** What the daemon does with an instance on its own: start it at boot, restart it when it ends. */
export interface InstancePolicy {
  autostart: boolean;
  restart: RestartPolicy;
}

export const DEFAULT_POLICY: InstancePolicy = { autostart: false, restart: 'no' };

interface PolicyRow {
  instance: string;
  autostart: number;
  restart_policy: RestartPolicy;
}

/** Autostart and restart policy per instance (a row only once set; deleted with the instance). */
export class PolicyRepository {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  get(name: string): InstancePolicy {
    const row = this.db.prepare('SELECT * FROM instance_policies WHERE instance = ?').get(name) as PolicyRow | undefined;
    return row === undefined ? { ...DEFAULT_POLICY } : { autostart: row.autostart === 1, restart: row.restart_policy };
  }

  all(): Map<string, InstancePolicy> {
    const rows = this.db.prepare('SELECT * FROM instance_policies').all() as unknown as PolicyRow[];
    return new Map(rows.map((r) => [r.instance, { autostart: r.autostart === 1, restart: r.restart_policy }]));
  }

  set(name: string, policy: InstancePolicy): void {
    this.db
      .prepare(
        `INSERT INTO instance_policies (instance, autostart, restart_policy) VALUES (?, ?, ?)
         ON CONFLICT (instance) DO UPDATE SET autostart = excluded.autostart, restart_policy = excluded.restart_policy`,
      )
      .run(name, policy.autostart ? 1 : 0, policy.restart);
  }
}
