import type { AppCore } from './context.ts';

/** A disk on a shared pool: over nfs://, or a file in a shared-dir pool's directory (the same path on every host). */
export function isSharedDisk(app: AppCore, disk: string): boolean {
  if (disk.startsWith('nfs://')) return true;
  return app.core.repos.storage.pools().some((p) => p.type === 'shared-dir' && disk.startsWith(`${p.path.replace(/\/+$/, '')}/`));
}
