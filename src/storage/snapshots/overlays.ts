/** The overlay files of external snapshots: where they live, and sweeping those nothing refers to. */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { StorageService } from '../service.ts';

export function overlaysDir(storage: StorageService, instance: string): string {
  return join(storage.paths.instanceDir(instance), 'overlays');
}

/** Every file a disk or a snapshot of the instance still needs. */
function referencedFiles(storage: StorageService, instanceName: string): Set<string> {
  const instance = storage.instances.repo.get(instanceName);
  const files = new Set<string>((instance?.spec.disks ?? []).map((d) => d.path));
  for (const s of storage.repo.snapshots(instanceName)) {
    for (const d of s.disks) {
      files.add(d.file);
      if (s.state === 'creating' && d.overlay !== undefined) files.add(d.overlay);
    }
  }
  return files;
}

/** Removes overlay files nothing refers to (left by a revert, a merge or a crash), except those QEMU has open. */
export function removeUnreferencedOverlays(storage: StorageService, instanceName: string, inUse: Set<string>): string[] {
  const dir = overlaysDir(storage, instanceName);
  if (!existsSync(dir)) return [];
  const keep = referencedFiles(storage, instanceName);
  const removed: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (keep.has(path) || inUse.has(path)) continue;
    rmSync(path, { force: true });
    removed.push(path);
  }
  return removed;
}
