import { snapshotList, snapshotView, type SnapshotApiView } from '../../api/views.ts';
import type { CreateSnapshotOptions, SnapshotApi, SnapshotOutcome } from '../../client/snapshots.ts';
import type { SnapshotResult } from '../../storage/snapshots.ts';
import type { StorageService } from '../../storage/service.ts';

const snapshots = () => import('../../storage/snapshots.ts');
const outcome = (r: SnapshotResult): SnapshotOutcome => ({ snapshot: snapshotView(r.snapshot), notes: r.notes });

/** The snapshot API in this process: the core called directly. */
export class LocalSnapshots implements SnapshotApi {
  readonly via = 'local' as const;
  private readonly storage: StorageService;

  constructor(storage: StorageService) {
    this.storage = storage;
  }

  async list(instance: string): Promise<SnapshotApiView[]> {
    return snapshotList(await (await snapshots()).listSnapshots(this.storage, instance));
  }

  async create(instance: string, options: CreateSnapshotOptions): Promise<SnapshotOutcome> {
    const request = {
      instance,
      ...(options.name === undefined ? {} : { name: options.name }),
      diskOnly: options.diskOnly === true,
      external: options.external === true,
      quiesce: options.quiesce === true,
    };
    return outcome(await (await snapshots()).createSnapshot(this.storage, request));
  }

  async revert(instance: string, snapshot: string): Promise<SnapshotOutcome> {
    return outcome(await (await snapshots()).revertSnapshot(this.storage, instance, snapshot));
  }

  async remove(instance: string, snapshot: string): Promise<SnapshotOutcome> {
    return outcome(await (await snapshots()).deleteSnapshot(this.storage, instance, snapshot));
  }
}
