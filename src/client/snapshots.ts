import type { SnapshotApiView } from '../api/views.ts';
import type { ApiClient } from './http.ts';
import { followOperation, type PhaseListener } from './operations.ts';

export interface CreateSnapshotOptions {
  name?: string;
  diskOnly?: boolean;
  external?: boolean;
  quiesce?: boolean;
}

/** What create, revert and delete report: the snapshot, and what happened beyond the obvious (notes). */
export interface SnapshotOutcome {
  snapshot: SnapshotApiView;
  notes: string[];
}

/** An instance's snapshots, in this process or through the daemon (same views either way). */
export interface SnapshotApi {
  readonly via: 'local' | 'daemon';
  /** Flat, oldest first; each names its parent. */
  list(instance: string): Promise<SnapshotApiView[]>;
  create(instance: string, options: CreateSnapshotOptions, onPhase?: PhaseListener): Promise<SnapshotOutcome>;
  revert(instance: string, snapshot: string, onPhase?: PhaseListener): Promise<SnapshotOutcome>;
  remove(instance: string, snapshot: string, onPhase?: PhaseListener): Promise<SnapshotOutcome>;
}

const enc = encodeURIComponent;

/** The snapshot API over HTTP: create, revert and delete are operations, followed to their end. */
export class RemoteSnapshots implements SnapshotApi {
  readonly via = 'daemon' as const;
  private readonly client: ApiClient;

  constructor(client: ApiClient) {
    this.client = client;
  }

  async list(instance: string): Promise<SnapshotApiView[]> {
    return (await this.client.request<SnapshotApiView[]>('GET', `/instances/${enc(instance)}/snapshots`)).body;
  }

  async create(instance: string, options: CreateSnapshotOptions, onPhase?: PhaseListener): Promise<SnapshotOutcome> {
    const body = {
      ...(options.name === undefined ? {} : { name: options.name }),
      ...(options.diskOnly ? { diskOnly: true } : {}),
      ...(options.external ? { external: true } : {}),
      ...(options.quiesce ? { quiesce: true } : {}),
    };
    return (await followOperation(this.client, 'POST', `/instances/${enc(instance)}/snapshots`, body, onPhase)) as SnapshotOutcome;
  }

  async revert(instance: string, snapshot: string, onPhase?: PhaseListener): Promise<SnapshotOutcome> {
    return (await followOperation(this.client, 'POST', `/instances/${enc(instance)}/snapshots/${enc(snapshot)}/revert`, undefined, onPhase)) as SnapshotOutcome;
  }

  async remove(instance: string, snapshot: string, onPhase?: PhaseListener): Promise<SnapshotOutcome> {
    return (await followOperation(this.client, 'DELETE', `/instances/${enc(instance)}/snapshots/${enc(snapshot)}`, undefined, onPhase)) as SnapshotOutcome;
  }
}
