/**
 * The cluster's shared state as virtnode uses it: a few operations any strict-serializable key-value store with
 * leases and watches can give. etcd-kv.ts implements it on etcd; nothing else in virtnode names etcd's client.
 *
 * Every write that must not race goes through `txn`: "apply these writes if those keys still have these mod
 * revisions". There are no locks (etcd's are not safe under partitions); a loser re-reads and decides again.
 */

export interface KvEntry {
  key: string;
  value: string;
  /** The store's revision of the last write to this key (never 0 for an entry that exists). */
  modRevision: number;
  createRevision: number;
  /** The lease the key is attached to, '0' when none. */
  lease: string;
}

/** A key's expected mod revision; 0 means "the key must be absent". */
export interface KvGuard {
  key: string;
  modRevision: number;
}

export type KvWrite = { put: string; value: string; lease?: KvLease } | { delete: string };

export interface KvTxnResult {
  won: boolean;
  /** The store's revision after the transaction (or at the time it lost). */
  revision: number;
}

export interface KvLease {
  readonly id: string;
  readonly ttlSeconds: number;
  /** Ends the lease at once: every key attached to it is deleted. */
  revoke(): Promise<void>;
  /** Stops keeping it alive without revoking it: its keys go when the TTL runs out. */
  release(): void;
}

export type KvEvent = { type: 'put'; entry: KvEntry } | { type: 'delete'; key: string; modRevision: number };

export interface KvWatch {
  cancel(): Promise<void>;
}

export interface Kv {
  get(key: string): Promise<KvEntry | undefined>;
  /** Every key under the prefix, sorted by key, with the revision the read saw. */
  list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }>;
  txn(guards: readonly KvGuard[], writes: readonly KvWrite[]): Promise<KvTxnResult>;
  /**
   * A lease kept alive in the background. `onLost` is called once if it cannot be renewed before it expires
   * (or the store says it is gone): from then on its keys are (or will shortly be) deleted.
   */
  lease(ttlSeconds: number, onLost: (reason: string) => void): Promise<KvLease>;
  /** Changes under the prefix after `fromRevision` (default: from now on), in order. */
  watch(prefix: string, onEvent: (event: KvEvent) => void, fromRevision?: number): Promise<KvWatch>;
  close(): Promise<void>;
}
