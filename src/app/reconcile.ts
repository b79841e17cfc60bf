import type { CoreContext } from '../core/context.ts';
import { removeStaleIncoming } from '../instances/migrate/stale-incoming.ts';
import { killUnrecordedQemus, repairInstances, repairNetworks } from '../instances/repair.ts';
import { storageNeedsRepair } from '../storage/needs-repair.ts';
import { reconcileTemplatesAndBases } from '../templates/reconcile.ts';

export interface ReconcileReport {
  repaired: string[];
}

/**
 * Makes the database and the machine agree after a crash of any virtnode process: instances, then storage,
 * then incoming live moves whose preparing process died, then QEMUs with no record, managed networks, templates and read-only bases. Each part repairs only what no
 * live process holds a lock on. The core context runs it once per process (`ensureReconciled`); `deep` also
 * looks for unrecorded QEMUs when nothing else needed repair.
 */
export async function reconcile(core: CoreContext, options: { deep?: boolean } = {}): Promise<ReconcileReport> {
  const instances = await repairInstances(core);
  const repaired = [...instances.repaired];
  // Loaded only when there is something to repair: the storage modules stay off every command's start-up path.
  if (storageNeedsRepair(core)) repaired.push(...(await (await import('../storage/repair.ts')).repairStorage(core)));
  // Before the unrecorded QEMUs: a dead move's paused QEMU and its staged disks go together, marker and all.
  for (const dir of await removeStaleIncoming(core.paths.instances)) repaired.push(`removed the unfinished incoming move in ${dir}`);
  if (options.deep || instances.strays || repaired.length > 0) repaired.push(...(await killUnrecordedQemus(core)));
  if (process.getuid?.() === 0) repaired.push(...(await repairNetworks(core)));
  repaired.push(...(await reconcileTemplatesAndBases(core)));
  return { repaired };
}
