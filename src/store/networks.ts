import type { Network } from '../network/model.ts';
import type { Db } from './db.ts';
import { NamedTable } from './named-table.ts';

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

export class NetworkRepository extends NamedTable<NetworkRow, Network> {
  constructor(db: Db) {
    super(db, 'networks', toNetwork);
  }

  insert(network: Network): void {
    const { name, id, createdAt, ...spec } = network;
    this.db.prepare('INSERT INTO networks (name, id, spec, created_at) VALUES (?, ?, ?, ?)').run(name, id, JSON.stringify(spec), createdAt);
  }

  /** The record of the same network (name and id) with a new spec (a cluster network's DHCP host changed). */
  updateSpec(network: Network): void {
    const { name, id, createdAt: _, ...spec } = network;
    this.db.prepare('UPDATE networks SET spec = ? WHERE name = ? AND id = ?').run(JSON.stringify(spec), name, id);
  }
}
