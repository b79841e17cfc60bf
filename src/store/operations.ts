import type { OperationStatus, OperationView } from '../api/schemas.ts';
import type { ProcessIdentity } from '../lib/proc.ts';
import type { Db } from './db.ts';

interface OperationRow {
  id: string;
  kind: string;
  target: string | null;
  status: OperationStatus;
  progress: string;
  result: string | null;
  error: string | null;
  owner_pid: number;
  owner_start: string;
  created_at: string;
  finished_at: string | null;
  started_by: string | null;
}

/** How much finished history is kept: the newest KEEP_MAX, none older than KEEP_MS. */
export const KEEP_FINISHED_MAX = 1_000;
export const KEEP_FINISHED_MS = 7 * 24 * 60 * 60_000;

function toView(row: OperationRow): OperationView {
  return {
    id: row.id,
    kind: row.kind,
    ...(row.target === null ? {} : { target: row.target }),
    status: row.status,
    progress: JSON.parse(row.progress) as OperationView['progress'],
    ...(row.result === null ? {} : { result: JSON.parse(row.result) as unknown }),
    ...(row.error === null ? {} : { error: JSON.parse(row.error) as NonNullable<OperationView['error']> }),
    createdAt: row.created_at,
    ...(row.finished_at === null ? {} : { finishedAt: row.finished_at }),
    ...(row.started_by === null ? {} : { startedBy: row.started_by }),
  };
}

/**
 * The daemon's operations (launch, stop, pull...) as rows: written when one starts, on each named phase (a
 * handful per operation) and when it ends, so a restarted daemon still answers for them. The daemon that runs a
 * `running` one is named by its process identity.
 */
export class OperationRepository {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  insert(view: OperationView, owner: ProcessIdentity): void {
    this.db
      .prepare('INSERT INTO operations (id, kind, target, status, progress, owner_pid, owner_start, created_at, started_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(view.id, view.kind, view.target ?? null, view.status, JSON.stringify(view.progress), owner.pid, owner.start, view.createdAt, view.startedBy ?? null);
  }

  saveProgress(id: string, progress: OperationView['progress']): void {
    this.db.prepare("UPDATE operations SET progress = ? WHERE id = ? AND status = 'running'").run(JSON.stringify(progress), id);
  }

  finish(view: OperationView): void {
    this.db
      .prepare('UPDATE operations SET status = ?, progress = ?, result = ?, error = ?, finished_at = ? WHERE id = ?')
      .run(
        view.status,
        JSON.stringify(view.progress),
        view.result === undefined ? null : JSON.stringify(view.result),
        view.error === undefined ? null : JSON.stringify(view.error),
        view.finishedAt ?? new Date().toISOString(),
        view.id,
      );
  }

  get(id: string): OperationView | undefined {
    const row = this.db.prepare('SELECT * FROM operations WHERE id = ?').get(id) as OperationRow | undefined;
    return row === undefined ? undefined : toView(row);
  }

  /** Newest first. */
  list(options: { limit: number; status?: OperationStatus }): OperationView[] {
    const rows = (
      options.status === undefined
        ? this.db.prepare('SELECT * FROM operations ORDER BY created_at DESC, rowid DESC LIMIT ?').all(options.limit)
        : this.db.prepare('SELECT * FROM operations WHERE status = ? ORDER BY created_at DESC, rowid DESC LIMIT ?').all(options.status, options.limit)
    ) as unknown as OperationRow[];
    return rows.map(toView);
  }

  /** Running operations and the daemon process that runs (or ran) each. */
  running(): Array<{ view: OperationView; owner: ProcessIdentity }> {
    const rows = this.db.prepare("SELECT * FROM operations WHERE status = 'running'").all() as unknown as OperationRow[];
    return rows.map((r) => ({ view: toView(r), owner: { pid: r.owner_pid, start: r.owner_start } }));
  }

  /** Drops finished operations beyond the newest `max` and those that ended before `olderThan`; returns how many. */
  prune(max = KEEP_FINISHED_MAX, olderThan = new Date(Date.now() - KEEP_FINISHED_MS).toISOString()): number {
    const result = this.db
      .prepare(
        `DELETE FROM operations WHERE status != 'running' AND (finished_at < ? OR rowid NOT IN (
           SELECT rowid FROM operations WHERE status != 'running' ORDER BY created_at DESC, rowid DESC LIMIT ?))`,
      )
      .run(olderThan, max);
    return Number(result.changes);
  }
}
