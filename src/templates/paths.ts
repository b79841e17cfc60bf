import { join } from 'node:path';
import { validateName } from '../lib/names.ts';
import { type StatePaths, within } from '../lib/paths.ts';

/** `<state>/templates/NAME/`: a template's sealed disk, mode 0444, never written again. */
export function templatesDir(paths: StatePaths): string {
  return join(paths.root, 'templates');
}

export function templateDir(paths: StatePaths, name: string): string {
  return within(templatesDir(paths), validateName('template', name));
}

export const TEMPLATE_DISK_FILE = 'disk.qcow2';
/** A container template's sealed upper directory, as one tar file. */
export const CONTAINER_TEMPLATE_FILE = 'upper.tar';

/**
 * `<state>/bases/`: read-only disks that linked clones of an instance share. When an instance is cloned linked,
 * its current disk becomes one of these and the instance gets a new overlay on it; a base with no disk left on
 * top of it is removed by reconciliation.
 */
export function basesDir(paths: StatePaths): string {
  return join(paths.root, 'bases');
}

/** The new overlay on a base, made beside the disk it then replaces by one rename. */
export function rebaseOverlayOf(diskPath: string): string {
  return `${diskPath}.rebase`;
}

/**
 * Where the sealing appliance is built: VIRTNODE_APPLIANCE_DIR, else /var/cache/virtnode/seal-appliance for root
 * (shared by every state directory on the machine), else the state directory's cache.
 */
export function applianceDir(paths: StatePaths, env: NodeJS.ProcessEnv = process.env): string {
  const override = env['VIRTNODE_APPLIANCE_DIR'];
  if (override !== undefined && override !== '') return override;
  return process.getuid?.() === 0 ? '/var/cache/virtnode/seal-appliance' : join(paths.cache, 'seal-appliance');
}

/** A file shipped with virtnode's sources (src/lib/install-paths.ts finds them from src/ and from dist/). */
export { installFile as repoFile } from '../lib/install-paths.ts';

/** The lock held while a base is made or bases are collected (not an instance name: it is no DNS label). */
export const BASES_LOCK = '#bases';
