/**
 * Disk ownership on one host: claims in a SQLite file shared by every virtnode state directory of the host
 * (default /run/virtnode/disk-owners.db, so a reboot, which ends every QEMU, also ends every claim;
 * VIRTNODE_DISK_OWNERS overrides it). A claim is alive while its process is (pid and start time).
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { isAlive, type ProcessIdentity } from '../lib/proc.ts';
import { type DiskClaim, type DiskHolder, type DiskOwnership, diskInUse, sameHolder } from './disk-ownership.ts';

const BUSY_TIMEOUT_MS = 10_000;

export function defaultOwnersFile(stateDir: string): string {
  const override = process.env['VIRTNODE_DISK_OWNERS'];
  if (override !== undefined && override !== '') return override;
  return process.getuid?.() === 0 ? '/run/virtnode/disk-owners.db' : join(stateDir, 'disk-owners.db');
}

interface ClaimRow {
  disk: string;
  host: string;
  state_dir: string;
  instance: string;
  pid: number;
  pid_start: string;
  revision: number;
}

const toClaim = (r: ClaimRow): DiskClaim => ({
  disk: r.disk,
  holder: { host: r.host, stateDir: r.state_dir, instance: r.instance },
  process: { pid: r.pid, start: r.pid_start },
  revision: r.revision,
});

export class LocalDiskOwnership implements DiskOwnership {
  private readonly db: DatabaseSync;
  private readonly alive: (process: ProcessIdentity) => boolean;

  constructor(file: string, options: { alive?: (process: ProcessIdentity) => boolean } = {}) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.db = new DatabaseSync(file, { timeout: BUSY_TIMEOUT_MS });
    this.db.exec(`PRAGMA journal_mode = WAL;
      CREATE TABLE IF NOT EXISTS disk_claims (
        disk TEXT PRIMARY KEY, host TEXT NOT NULL, state_dir TEXT NOT NULL, instance TEXT NOT NULL,
        pid INTEGER NOT NULL, pid_start TEXT NOT NULL, revision INTEGER NOT NULL)`);
    this.alive = options.alive ?? isAlive;
  }

  private row(disk: string): DiskClaim | undefined {
    const r = this.db.prepare('SELECT * FROM disk_claims WHERE disk = ?').get(disk) as ClaimRow | undefined;
    return r === undefined ? undefined : toClaim(r);
  }

  private inTransaction<T>(fn: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const out = fn();
      this.db.exec('COMMIT');
      return out;
    } catch (e) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw e;
    }
  }

  async acquire(disks: readonly string[], holder: DiskHolder, process: ProcessIdentity): Promise<DiskClaim[]> {
    return this.inTransaction(() => {
      const claims: DiskClaim[] = [];
      for (const disk of disks) {
        const current = this.row(disk);
        if (current === undefined) {
          this.db
            .prepare('INSERT INTO disk_claims (disk, host, state_dir, instance, pid, pid_start, revision) VALUES (?, ?, ?, ?, ?, ?, 1)')
            .run(disk, holder.host, holder.stateDir, holder.instance, process.pid, process.start);
        } else {
          if (!sameHolder(current.holder, holder) && this.alive(current.process)) throw diskInUse(disk, current, holder);
          // The etcd shape: replace only if nobody changed it since it was read.
          const changed = this.db
            .prepare('UPDATE disk_claims SET host = ?, state_dir = ?, instance = ?, pid = ?, pid_start = ?, revision = revision + 1 WHERE disk = ? AND revision = ?')
            .run(holder.host, holder.stateDir, holder.instance, process.pid, process.start, disk, current.revision);
          if (changed.changes !== 1) throw diskInUse(disk, this.row(disk) ?? current, holder);
        }
        claims.push(this.row(disk)!);
      }
      return claims;
    });
  }

  async handOver(disks: readonly string[], holder: DiskHolder, process: ProcessIdentity): Promise<void> {
    this.inTransaction(() => {
      for (const disk of disks) {
        this.db
          .prepare('UPDATE disk_claims SET pid = ?, pid_start = ?, revision = revision + 1 WHERE disk = ? AND host = ? AND state_dir = ? AND instance = ?')
          .run(process.pid, process.start, disk, holder.host, holder.stateDir, holder.instance);
      }
    });
  }

  async release(disks: readonly string[], holder: DiskHolder): Promise<void> {
    this.inTransaction(() => {
      for (const disk of disks) {
        this.db.prepare('DELETE FROM disk_claims WHERE disk = ? AND host = ? AND state_dir = ? AND instance = ?').run(disk, holder.host, holder.stateDir, holder.instance);
      }
    });
  }

  async claimOf(disk: string): Promise<DiskClaim | undefined> {
    const claim = this.row(disk);
    return claim !== undefined && this.alive(claim.process) ? claim : undefined;
  }

  close(): void {
    this.db.close();
  }
}
