import type { DiskFormat } from '../instances/model.ts';
import type { Db } from './db.ts';
import { NamedTable } from './named-table.ts';

/** dir: a local directory; shared-dir: a directory mounted at the same path on every host; nfs: an NFS export. */
export type PoolType = 'dir' | 'shared-dir' | 'nfs';

export interface Pool {
  name: string;
  type: PoolType;
  /** The directory, or for nfs the nfs:// URL of the export's top directory. */
  path: string;
  /** nfs: SERVER:/EXPORT. */
  source: string | undefined;
  createdAt: string;
}

/** `creating` and `deleting` are held under the volume's lock; without a live owner they mean a crash. */
export type VolumeState = 'creating' | 'ready' | 'deleting';

export interface Volume {
  name: string;
  pool: string;
  path: string;
  format: DiskFormat;
  state: VolumeState;
  createdAt: string;
}

export type SnapshotKind = 'internal' | 'external';
export type SnapshotState = 'creating' | 'ready' | 'deleting' | 'reverting';

/** One disk in a snapshot. External: `file` is the image frozen at the snapshot (its state then), `overlay`
 * the file made on it at creation. Internal: `file` is the qcow2 holding the internal snapshot. */
export interface SnapshotDisk {
  id: string;
  file: string;
  format: string;
  overlay?: string;
  /** Memory snapshots: the PCI slot of the disk's device when the state was saved (it must match to load). */
  slot?: string;
}

export interface Snapshot {
  instance: string;
  name: string;
  kind: SnapshotKind;
  memory: boolean;
  parent: string | undefined;
  state: SnapshotState;
  current: boolean;
  disks: SnapshotDisk[];
  createdAt: string;
}

interface SnapshotRow {
  instance: string;
  name: string;
  kind: SnapshotKind;
  memory: number;
  parent: string | null;
  state: SnapshotState;
  is_current: number;
  disks: string;
  created_at: string;
}

function toSnapshot(r: SnapshotRow): Snapshot {
  return {
    instance: r.instance,
    name: r.name,
    kind: r.kind,
    memory: r.memory === 1,
    parent: r.parent ?? undefined,
    state: r.state,
    current: r.is_current === 1,
    disks: JSON.parse(r.disks) as SnapshotDisk[],
    createdAt: r.created_at,
  };
}

interface VolumeRow {
  name: string;
  pool: string;
  path: string;
  format: DiskFormat;
  state: VolumeState;
  created_at: string;
}

const toVolume = (r: VolumeRow): Volume => ({ name: r.name, pool: r.pool, path: r.path, format: r.format, state: r.state, createdAt: r.created_at });
type PoolRow = { name: string; type: PoolType; path: string; source: string | null; created_at: string };
const toPool = (r: PoolRow): Pool => ({ name: r.name, type: r.type, path: r.path, source: r.source ?? undefined, createdAt: r.created_at });

export class StorageRepository {
  private readonly db: Db;
  private readonly poolTable: NamedTable<PoolRow, Pool>;
  private readonly volumeTable: NamedTable<VolumeRow, Volume>;

  constructor(db: Db) {
    this.db = db;
    this.poolTable = new NamedTable(db, 'pools', toPool);
    this.volumeTable = new NamedTable(db, 'volumes', toVolume);
  }

  pools(): Pool[] {
    return this.poolTable.list();
  }

  pool(name: string): Pool | undefined {
    return this.poolTable.get(name);
  }

  insertPool(name: string, path: string, kind: { type: PoolType; source?: string } = { type: 'dir' }): void {
    this.db
      .prepare('INSERT INTO pools (name, type, path, source, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(name, kind.type, path, kind.source ?? null, new Date().toISOString());
  }

  deletePool(name: string): void {
    this.poolTable.delete(name);
  }

  volumes(pool?: string): Volume[] {
    if (pool === undefined) return this.volumeTable.list();
    return (this.db.prepare('SELECT * FROM volumes WHERE pool = ? ORDER BY name').all(pool) as unknown as VolumeRow[]).map(toVolume);
  }

  volume(name: string): Volume | undefined {
    return this.volumeTable.get(name);
  }

  insertVolume(v: Omit<Volume, 'createdAt'>): void {
    this.db
      .prepare('INSERT INTO volumes (name, pool, path, format, state, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(v.name, v.pool, v.path, v.format, v.state, new Date().toISOString());
  }

  updateVolume(name: string, change: { path?: string; format?: DiskFormat; state?: VolumeState }): void {
    const v = this.volume(name);
    if (v === undefined) return;
    this.db
      .prepare('UPDATE volumes SET path = ?, format = ?, state = ? WHERE name = ?')
      .run(change.path ?? v.path, change.format ?? v.format, change.state ?? v.state, name);
  }

  deleteVolume(name: string): void {
    this.volumeTable.delete(name);
  }

  snapshots(instance?: string): Snapshot[] {
    const rows = (
      instance === undefined
        ? this.db.prepare('SELECT * FROM snapshots ORDER BY instance, created_at, name').all()
        : this.db.prepare('SELECT * FROM snapshots WHERE instance = ? ORDER BY created_at, name').all(instance)
    ) as unknown as SnapshotRow[];
    return rows.map(toSnapshot);
  }

  snapshot(instance: string, name: string): Snapshot | undefined {
    const row = this.db.prepare('SELECT * FROM snapshots WHERE instance = ? AND name = ?').get(instance, name) as SnapshotRow | undefined;
    return row === undefined ? undefined : toSnapshot(row);
  }

  insertSnapshot(s: Omit<Snapshot, 'createdAt' | 'current'>): void {
    this.db
      .prepare('INSERT INTO snapshots (instance, name, kind, memory, parent, state, is_current, disks, created_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)')
      .run(s.instance, s.name, s.kind, s.memory ? 1 : 0, s.parent ?? null, s.state, JSON.stringify(s.disks), new Date().toISOString());
  }

  setSnapshotState(instance: string, name: string, state: SnapshotState): void {
    this.db.prepare('UPDATE snapshots SET state = ? WHERE instance = ? AND name = ?').run(state, instance, name);
  }

  setSnapshotDisks(instance: string, name: string, disks: SnapshotDisk[]): void {
    this.db.prepare('UPDATE snapshots SET disks = ? WHERE instance = ? AND name = ?').run(JSON.stringify(disks), instance, name);
  }

  /** Marks `name` as the snapshot the instance's present state descends from (undefined: none). */
  setCurrentSnapshot(instance: string, name: string | undefined): void {
    this.db.prepare('UPDATE snapshots SET is_current = (name IS ?) WHERE instance = ?').run(name ?? null, instance);
  }

  /** Removes a snapshot; its children move up to its parent, so the tree stays connected. */
  deleteSnapshot(instance: string, name: string): void {
    const s = this.snapshot(instance, name);
    if (s === undefined) return;
    this.db.prepare('UPDATE snapshots SET parent = ? WHERE instance = ? AND parent = ?').run(s.parent ?? null, instance, name);
    if (s.current) this.setCurrentSnapshot(instance, s.parent);
    this.db.prepare('DELETE FROM snapshots WHERE instance = ? AND name = ?').run(instance, name);
  }

  /** Is any volume or snapshot in the middle of a change (`creating`, `deleting`, `reverting`)? One query. */
  anyUnfinished(): boolean {
    const row = this.db.prepare("SELECT 1 FROM snapshots WHERE state != 'ready' UNION ALL SELECT 1 FROM volumes WHERE state != 'ready' LIMIT 1").get();
    return row !== undefined;
  }
}
