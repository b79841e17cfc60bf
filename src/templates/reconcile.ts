import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreContext } from '../core/context.ts';
import { backingChain } from '../storage/backing.ts';
import { lockOwner, withLockIfFree } from '../store/locks.ts';
import { BASES_LOCK, basesDir, rebaseOverlayOf, templatesDir } from './paths.ts';

/**
 * The templates' and clones' part of reconciliation: a template directory with no record (a `template create`
 * interrupted before it recorded the template, or a `template rm` after) is removed, and so is a read-only base
 * that no instance or template disk sits on any more (its last linked clone was deleted, or a linked clone was
 * interrupted before the source moved onto it).
 */
export async function reconcileTemplatesAndBases(core: CoreContext): Promise<string[]> {
  const repaired: string[] = [];
  const templates = core.repos.templates;
  const tdir = templatesDir(core.paths);
  for (const entry of existsSync(tdir) ? readdirSync(tdir) : []) {
    if (templates.get(entry) !== undefined || lockOwner(core.db, entry) !== undefined) continue;
    await withLockIfFree(core.db, entry, 'repair', () => {
      if (templates.get(entry) !== undefined) return;
      rmSync(join(tdir, entry), { recursive: true, force: true });
      repaired.push(`template ${entry}: removed a directory with no template record`);
    });
  }

  const bdir = basesDir(core.paths);
  const bases = existsSync(bdir) ? readdirSync(bdir) : [];
  if (bases.length === 0) return repaired;
  // Skipped while a linked clone is making a base (it holds the lock).
  await withLockIfFree(core.db, BASES_LOCK, 'repair', () => {
    // The overlay a linked clone was about to rename over its source's disk (made under this lock).
    for (const disk of core.repos.instances.list().flatMap((i) => i.spec.disks)) {
      const overlay = rebaseOverlayOf(disk.path);
      if (!existsSync(overlay)) continue;
      rmSync(overlay, { force: true });
      repaired.push(`removed ${overlay}, left by an interrupted linked clone`);
    }
    const inUse = new Set<string>();
    const tops = [...core.repos.instances.list().flatMap((i) => i.spec.disks.map((d) => d.path)), ...templates.list().map((t) => t.diskPath)];
    for (const top of tops) for (const file of backingChain(top)) inUse.add(file);
    for (const base of bases) {
      const path = join(bdir, base);
      if (inUse.has(path)) continue;
      rmSync(path, { force: true });
      repaired.push(`removed the read-only base ${base}: no disk sits on it any more`);
    }
  });
  return repaired;
}
