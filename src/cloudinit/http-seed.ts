/**
 * The HTTP NoCloud seed directory's contract between launch (which writes it) and the metadata responder (which
 * serves it to the guest): which files exist, and the marker that says the first boot is over.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The user-data served after the first boot: the same, without the SSH host private keys and password hash. */
export const USER_DATA_AFTER_FIRST_BOOT = 'user-data.after-first-boot';
/** Where the guest's cloud-init phones home (vendor-data) when its first boot is done. */
export const FIRST_BOOT_DONE_PATH = '/first-boot-done';
const FIRST_BOOT_MARKER = 'first-boot-done';

export function firstBootMarker(seedDir: string): string {
  return join(seedDir, FIRST_BOOT_MARKER);
}

/** Idempotent: the guest may phone home more than once, and launch marks it too when it sees cloud-init finish. */
export function markFirstBootDone(seedDir: string): void {
  writeFileSync(firstBootMarker(seedDir), `${new Date().toISOString()}\n`, { mode: 0o600 });
}

/**
 * vendor-data for the HTTP seed: cloud-init's phone_home (per instance, in the final stage, after every module that
 * reads user-data) tells the responder the first boot is over. A user's own phone_home replaces it (user-data wins).
 */
export function renderHttpSeedVendorData(metadataAddress: string): string {
  return ['#cloud-config', 'phone_home:', `  url: http://${metadataAddress}${FIRST_BOOT_DONE_PATH}`, '  post: [instance_id]', '  tries: 5', ''].join('\n');
}
