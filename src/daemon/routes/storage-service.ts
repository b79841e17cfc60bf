import type { StorageService } from '../../storage/service.ts';
import type { DaemonCore } from '../core.ts';

/** The storage service for routes, loaded on first use (the daemon starts without it) and made once per core. */
export function lazyStorageService(core: DaemonCore): () => Promise<StorageService> {
  let service: StorageService | undefined;
  return async () => {
    const { StorageService } = await import('../../storage/service.ts');
    service ??= new StorageService(core.instances.core);
    await core.instances.ensureReconciled();
    return service;
  };
}
