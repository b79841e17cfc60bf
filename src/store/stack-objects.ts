import type { Db } from './db.ts';

/** An object `virtnode apply` manages: the stack that owns it and whether that stack created it. */
export interface StackObject {
  kind: string;
  name: string;
  stack: string;
  /** Made by the stack (so `--prune` may delete it); false for an object that existed and was adopted. */
  created: boolean;
  /** sha256 of the user-data the instance was launched with, when it had one. */
  userDataSha256?: string;
}

interface Row {
  kind: string;
  name: string;
  stack: string;
  created: number;
  details: string;
}

const toObject = (r: Row): StackObject => {
  const details = JSON.parse(r.details) as { userDataSha256?: string };
  return { kind: r.kind, name: r.name, stack: r.stack, created: r.created === 1, ...(details.userDataSha256 === undefined ? {} : { userDataSha256: details.userDataSha256 }) };
};

export class StackObjectRepository {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  all(): StackObject[] {
    return (this.db.prepare('SELECT * FROM stack_objects ORDER BY kind, name').all() as unknown as Row[]).map(toObject);
  }

  set(object: StackObject): void {
    const details = JSON.stringify(object.userDataSha256 === undefined ? {} : { userDataSha256: object.userDataSha256 });
    this.db
      .prepare(
        `INSERT INTO stack_objects (kind, name, stack, created, details, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (kind, name) DO UPDATE SET stack = excluded.stack, created = excluded.created, details = excluded.details, updated_at = excluded.updated_at`,
      )
      .run(object.kind, object.name, object.stack, object.created ? 1 : 0, details, new Date().toISOString());
  }

  delete(kind: string, name: string): void {
    this.db.prepare('DELETE FROM stack_objects WHERE kind = ? AND name = ?').run(kind, name);
  }
}
