import type { Db } from './db.ts';

/** The tables keyed by a `name` column. A table name is spliced into SQL, so it is one of these constants, never input. */
export type NamedTableName = 'images' | 'templates' | 'networks' | 'pools' | 'volumes';

/** A table whose rows are keyed by `name`, each read into a record by `toRecord`. */
export class NamedTable<Row, T> {
  protected readonly db: Db;
  private readonly table: NamedTableName;
  private readonly toRecord: (row: Row) => T;

  constructor(db: Db, table: NamedTableName, toRecord: (row: Row) => T) {
    this.db = db;
    this.table = table;
    this.toRecord = toRecord;
  }

  get(name: string): T | undefined {
    const row = this.db.prepare(`SELECT * FROM ${this.table} WHERE name = ?`).get(name) as Row | undefined;
    return row === undefined ? undefined : this.toRecord(row);
  }

  /** Every row, by name. */
  list(): T[] {
    return (this.db.prepare(`SELECT * FROM ${this.table} ORDER BY name`).all() as unknown as Row[]).map((row) => this.toRecord(row));
  }

  delete(name: string): void {
    this.db.prepare(`DELETE FROM ${this.table} WHERE name = ?`).run(name);
  }
}
