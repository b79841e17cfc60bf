/**
 * The NoCloud seed an instance's guest reads over HTTP lives in its instance directory on its host: a move to
 * another host carries its (small, text) files and points the metadata responder of the target's QEMU at the
 * target's copy.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationOffer } from './protocol.ts';

/** The NoCloud seed served over HTTP lives in the instance's directory: it goes with the instance. */
export interface CarriedSeed {
  /** Where the source has it (its QEMU's metadata responder names this directory). */
  from: string;
  files: Record<string, string>;
}

/** The offer with the metadata responder serving `to` instead of the source's seed directory `from`. */
export function withSeedDir(offer: MigrationOffer, from: string, to: string): MigrationOffer {
  const nics = offer.vm.nics.map((n) => {
    if (n.backend.kind !== 'user' || n.backend.guestForwards === undefined) return n;
    const guestForwards = n.backend.guestForwards.map((g) => ({ ...g, command: g.command.map((arg) => (arg === from ? to : arg)) }));
    return { ...n, backend: { ...n.backend, guestForwards } };
  });
  return { ...offer, vm: { ...offer.vm, nics } };
}

/** The files of an instance's HTTP seed (small text files), to carry to the target. */
export function readSeed(dir: string | undefined): CarriedSeed | undefined {
  if (dir === undefined || !existsSync(dir)) return undefined;
  const files: Record<string, string> = {};
  for (const f of readdirSync(dir, { withFileTypes: true })) if (f.isFile()) files[f.name] = readFileSync(join(dir, f.name), 'utf8');
  return { from: dir, files };
}
