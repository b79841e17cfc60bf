import type { Instance, InstanceSpec, InstanceState, InstanceType, Nic, NicNetwork } from '../instances/model.ts';
import type { Db } from './db.ts';

interface InstanceRow {
  name: string;
  uuid: string;
  smbios_uuid: string;
  type: InstanceType;
  state: InstanceState;
  state_reason: string | null;
  spec: string;
  pid: number | null;
  pid_start: string | null;
  created_at: string;
  updated_at: string;
}

interface NicRow {
  instance: string;
  idx: number;
  mac: string;
  network: NicNetwork;
  address: string | null;
  static_address: number;
}

function toInstance(row: InstanceRow, nics: NicRow[]): Instance {
  return {
    name: row.name,
    uuid: row.uuid,
    smbiosUuid: row.smbios_uuid,
    type: row.type,
    state: row.state,
    stateReason: row.state_reason ?? undefined,
    spec: JSON.parse(row.spec) as InstanceSpec,
    nics: nics.map((n) => ({ index: n.idx, mac: n.mac, network: n.network, ...(n.address === null ? {} : { address: n.address, staticAddress: n.static_address === 1 }) })),
    pid: row.pid ?? undefined,
    pidStart: row.pid_start ?? undefined,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export class InstanceRepository {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  get(name: string): Instance | undefined {
    const row = this.db.prepare('SELECT * FROM instances WHERE name = ?').get(name) as InstanceRow | undefined;
    if (row === undefined) return undefined;
    const nics = this.db.prepare('SELECT * FROM nics WHERE instance = ? ORDER BY idx').all(name) as unknown as NicRow[];
    return toInstance(row, nics);
  }

  list(): Instance[] {
    const rows = this.db.prepare('SELECT * FROM instances ORDER BY name').all() as unknown as InstanceRow[];
    const nics = this.db.prepare('SELECT * FROM nics ORDER BY instance, idx').all() as unknown as NicRow[];
    const byInstance = Map.groupBy(nics, (n) => n.instance);
    return rows.map((r) => toInstance(r, byInstance.get(r.name) ?? []));
  }

  insert(instance: Omit<Instance, 'createdAt' | 'updatedAt' | 'pid' | 'pidStart'>): void {
    const now = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO instances (name, uuid, smbios_uuid, type, state, state_reason, spec, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(instance.name, instance.uuid, instance.smbiosUuid, instance.type, instance.state, instance.stateReason ?? null, JSON.stringify(instance.spec), now, now);
    for (const nic of instance.nics) this.insertNic(instance.name, nic);
  }

  insertNic(instance: string, nic: Nic): void {
    this.db
      .prepare('INSERT INTO nics (instance, idx, mac, network, address, static_address) VALUES (?, ?, ?, ?, ?, ?)')
      .run(instance, nic.index, nic.mac, nic.network, nic.address ?? null, nic.staticAddress ? 1 : 0);
  }

  deleteNic(instance: string, index: number): void {
    this.db.prepare('DELETE FROM nics WHERE instance = ? AND idx = ?').run(instance, index);
  }

  /** Every NIC on a network, with its instance: reservations, address allocation, `network rm` refusal. */
  nicsOn(network: string): Array<Nic & { instance: string }> {
    const rows = this.db.prepare('SELECT * FROM nics WHERE network = ? ORDER BY instance, idx').all(network) as unknown as NicRow[];
    return rows.map((n) => ({ instance: n.instance, index: n.idx, mac: n.mac, network: n.network, ...(n.address === null ? {} : { address: n.address, staticAddress: n.static_address === 1 }) }));
  }

  updateSpec(name: string, spec: InstanceSpec): void {
    this.db.prepare('UPDATE instances SET spec = ?, updated_at = ? WHERE name = ?').run(JSON.stringify(spec), new Date().toISOString(), name);
  }

  setState(name: string, state: InstanceState, reason?: string): void {
    this.db
      .prepare('UPDATE instances SET state = ?, state_reason = ?, updated_at = ? WHERE name = ?')
      .run(state, reason ?? null, new Date().toISOString(), name);
  }

  /**
   * Changes the state only if it is still what the caller saw (and the same QEMU process), so an observer that
   * holds no lock can never overwrite the result of a concurrent operation.
   */
  compareAndSetState(name: string, expected: InstanceState, pid: number | undefined, state: InstanceState, reason?: string): boolean {
    const result = this.db
      .prepare('UPDATE instances SET state = ?, state_reason = ?, updated_at = ? WHERE name = ? AND state = ? AND pid IS ?')
      .run(state, reason ?? null, new Date().toISOString(), name, expected, pid ?? null);
    return result.changes === 1;
  }

  setProcess(name: string, pid: number | undefined, pidStart: string | undefined): void {
    this.db.prepare('UPDATE instances SET pid = ?, pid_start = ? WHERE name = ?').run(pid ?? null, pidStart ?? null, name);
  }

  delete(name: string): void {
    this.db.prepare('DELETE FROM instances WHERE name = ?').run(name);
  }

  macInUse(mac: string): boolean {
    return this.db.prepare('SELECT 1 FROM nics WHERE mac = ?').get(mac) !== undefined;
  }
}
