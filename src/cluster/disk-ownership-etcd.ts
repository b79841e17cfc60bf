/**
 * One writer per disk across the cluster: the owner of a disk on a shared pool is recorded in etcd under
 * `/virtnode/disks/<disk id>` (the disk id is diskKey: the nfs:// URL, or the path of a shared directory mounted at
 * the same place on every host). A claim is taken in a revision-guarded transaction before QEMU opens the disk:
 * refused while another holder is alive (on this host: its process runs; on another host: that host holds its
 * lease, for a host without a lease has fenced itself and killed its guests), taken over from a dead one.
 * The same DiskOwnership interface as the host-local guard (src/store/disk-ownership.ts).
 */
import { VirtnodeError } from '../lib/errors.ts';
import { isAlive, type ProcessIdentity } from '../lib/proc.ts';
import { type DiskClaim, type DiskHolder, type DiskOwnership, diskInUse } from '../store/disk-ownership.ts';
import type { Kv, KvEntry, KvGuard, KvWrite } from './kv.ts';
import { KEYS } from './model.ts';

export const DISK_KEYS = {
  disk: (id: string) => `/virtnode/disks/${encodeURIComponent(id)}`,
  disks: '/virtnode/disks/',
} as const;

/** What `/virtnode/disks/ID` holds. */
export interface DiskOwnerRecord {
  disk: string;
  /** The cluster host name of the holder. */
  host: string;
  instance: string;
  stateDir: string;
  /** On `host`: the process holding the disk open, or the daemon about to start it (pid 0: reserved by a failover). */
  process: ProcessIdentity;
  at: string;
}

export function diskOwnerOf(entry: KvEntry): DiskOwnerRecord {
  return JSON.parse(entry.value) as DiskOwnerRecord;
}

/** The write that records `record` as the owner of its disk (used by a move and a failover in their own txn). */
export function diskOwnerWrite(record: DiskOwnerRecord): KvWrite {
  return { put: DISK_KEYS.disk(record.disk), value: JSON.stringify(record) };
}

const MAX_ATTEMPTS = 20;

export class EtcdDiskOwnership implements DiskOwnership {
  private readonly store: () => Kv;
  /** This host's cluster name. */
  private readonly host: string;

  /** `kv` is asked at each call (the service may reopen its client). */
  constructor(kv: () => Kv, host: string) {
    this.store = kv;
    this.host = host;
  }

  private get kv(): Kv {
    return this.store();
  }

  /** The holder as DiskHolder says it (the host is the cluster name here, not the OS host name). */
  private holderOf(r: DiskOwnerRecord): DiskHolder {
    return { host: r.host, stateDir: r.stateDir, instance: r.instance };
  }

  private mine(r: DiskOwnerRecord, holder: DiskHolder): boolean {
    return r.host === this.host && r.instance === holder.instance;
  }

  /** Whether the record's holder may still write: its process here, or its host's lease elsewhere. */
  private async alive(r: DiskOwnerRecord): Promise<{ alive: boolean; guard?: KvGuard }> {
    // pid 0: reserved for this instance by a move or a failover, until its start here hands it to QEMU.
    if (r.host === this.host) return { alive: r.process.pid === 0 || isAlive(r.process) };
    const lease = await this.kv.get(KEYS.alive(r.host));
    // Taken over only while that host still holds no lease (guarded: absent at commit).
    return lease === undefined ? { alive: false, guard: { key: KEYS.alive(r.host), modRevision: 0 } } : { alive: true };
  }

  private record(disk: string, holder: DiskHolder, process: ProcessIdentity): DiskOwnerRecord {
    return { disk, host: this.host, instance: holder.instance, stateDir: holder.stateDir, process, at: new Date().toISOString() };
  }

  async acquire(disks: readonly string[], holder: DiskHolder, process: ProcessIdentity): Promise<DiskClaim[]> {
    for (let attempt = 1; ; attempt++) {
      const entries = await Promise.all(disks.map((d) => this.kv.get(DISK_KEYS.disk(d))));
      const guards: KvGuard[] = [];
      const writes: KvWrite[] = [];
      for (const [i, disk] of disks.entries()) {
        const entry = entries[i];
        guards.push({ key: DISK_KEYS.disk(disk), modRevision: entry?.modRevision ?? 0 });
        if (entry !== undefined) {
          const current = diskOwnerOf(entry);
          if (!this.mine(current, holder)) {
            const { alive, guard } = await this.alive(current);
            if (alive) throw diskInUse(disk, this.claim(current, entry.modRevision), { ...holder, host: this.host });
            if (guard !== undefined) guards.push(guard);
          }
        }
        writes.push(diskOwnerWrite(this.record(disk, holder, process)));
      }
      const r = await this.kv.txn(guards, writes);
      if (r.won) return disks.map((d) => this.claim(this.record(d, holder, process), r.revision));
      if (attempt >= MAX_ATTEMPTS) throw new VirtnodeError('BUSY', `disks ${disks.join(', ')}: their ownership kept changing while ${holder.instance} claimed them`, { hint: 'try again' });
    }
  }

  private claim(r: DiskOwnerRecord, revision: number): DiskClaim {
    return { disk: r.disk, holder: this.holderOf(r), process: r.process, revision };
  }

  async handOver(disks: readonly string[], holder: DiskHolder, process: ProcessIdentity): Promise<void> {
    await this.rewrite(disks, holder, (r) => ({ ...r, process, at: new Date().toISOString() }));
  }

  async release(disks: readonly string[], holder: DiskHolder): Promise<void> {
    await this.rewrite(disks, holder, undefined);
  }

  /** Changes (or deletes) this holder's own claims, each guarded by the revision read. */
  private async rewrite(disks: readonly string[], holder: DiskHolder, change: ((r: DiskOwnerRecord) => DiskOwnerRecord) | undefined): Promise<void> {
    for (const disk of disks) {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const entry = await this.kv.get(DISK_KEYS.disk(disk));
        if (entry === undefined || !this.mine(diskOwnerOf(entry), holder)) break;
        const key = DISK_KEYS.disk(disk);
        const write: KvWrite = change === undefined ? { delete: key } : diskOwnerWrite(change(diskOwnerOf(entry)));
        if ((await this.kv.txn([{ key, modRevision: entry.modRevision }], [write])).won) break;
      }
    }
  }

  async claimOf(disk: string): Promise<DiskClaim | undefined> {
    const entry = await this.kv.get(DISK_KEYS.disk(disk));
    if (entry === undefined) return undefined;
    const r = diskOwnerOf(entry);
    return (await this.alive(r)).alive ? this.claim(r, entry.modRevision) : undefined;
  }
}

/**
 * The guard a cluster host uses: disks on shared pools (`isShared`) are claimed cluster-wide in etcd, the others
 * on this host alone (`local`). `shared()` is undefined while the host is in no cluster.
 */
export class SplitDiskOwnership implements DiskOwnership {
  private readonly local: DiskOwnership;
  private readonly shared: () => DiskOwnership | undefined;
  private readonly isShared: (disk: string) => boolean;

  constructor(local: DiskOwnership, shared: () => DiskOwnership | undefined, isShared: (disk: string) => boolean) {
    this.local = local;
    this.shared = shared;
    this.isShared = isShared;
  }

  private split(disks: readonly string[]): { local: string[]; shared: string[]; store: DiskOwnership | undefined } {
    const store = this.shared();
    if (store === undefined) return { local: [...disks], shared: [], store };
    return { local: disks.filter((d) => !this.isShared(d)), shared: disks.filter((d) => this.isShared(d)), store };
  }

  async acquire(disks: readonly string[], holder: DiskHolder, process: ProcessIdentity): Promise<DiskClaim[]> {
    const s = this.split(disks);
    const here = await this.local.acquire(s.local, holder, process);
    if (s.shared.length === 0 || s.store === undefined) return here;
    try {
      return [...here, ...(await s.store.acquire(s.shared, holder, process))];
    } catch (e) {
      await this.local.release(s.local, holder).catch(() => undefined);
      throw e;
    }
  }

  async handOver(disks: readonly string[], holder: DiskHolder, process: ProcessIdentity): Promise<void> {
    const s = this.split(disks);
    await this.local.handOver(s.local, holder, process);
    if (s.store !== undefined && s.shared.length > 0) await s.store.handOver(s.shared, holder, process);
  }

  async release(disks: readonly string[], holder: DiskHolder): Promise<void> {
    const s = this.split(disks);
    await this.local.release(s.local, holder);
    // etcd out of reach: the claim stays, naming this host; it is taken back at the next start here, and over
    // by another host only once this one holds no lease (so a stop never fails for it).
    if (s.store !== undefined && s.shared.length > 0) await s.store.release(s.shared, holder).catch(() => undefined);
  }

  async claimOf(disk: string): Promise<DiskClaim | undefined> {
    const store = this.shared();
    return store !== undefined && this.isShared(disk) ? store.claimOf(disk) : this.local.claimOf(disk);
  }
}

/** The disk ownership records naming `instance` on `host`, with their entries (to move them in another txn). */
export async function disksHeldBy(kv: Kv, host: string, instance: string): Promise<Array<{ entry: KvEntry; record: DiskOwnerRecord }>> {
  const { entries } = await kv.list(DISK_KEYS.disks);
  return entries.map((entry) => ({ entry, record: diskOwnerOf(entry) })).filter((x) => x.record.host === host && x.record.instance === instance);
}
