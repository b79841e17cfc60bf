import type { Network } from '../network/model.ts';
import type { Db } from './db.ts';

interface NetworkRow {
  name: string;
  id: string;
  spec: string;
  created_at: string;
}

type StoredSpec = Omit<Network, 'name' | 'id' | 'createdAt'>;

function toNetwork(row: NetworkRow): Network {
  return { name: row.name, id: row.id, ...(JSON.parse(row.spec) as StoredSpec), createdAt: row.created_at };
}

export class NetworkRepository {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  get(name: string): Network | undefined {
    const row = this.db.prepare('SELECT * FROM networks WHERE name = ?').get(name) as NetworkRow | undefined;
    return row === undefined ? undefined : toNetwork(row);
  }

  list(): Network[] {
    return (this.db.prepare('SELECT * FROM networks ORDER BY name').all() as unknown as NetworkRow[]).map(toNetwork);
  }

  insert(network: Network): void {
    const { name, id, createdAt, ...spec } = network;
    this.db.prepare('INSERT INTO networks (name, id, spec, created_at) VALUES (?, ?, ?, ?)').run(name, id, JSON.stringify(spec), createdAt);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM networks WHERE name = ?').run(name);
  }
}
