import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DEFAULT_DIR = fileURLToPath(new URL('../../.cache/images', import.meta.url));

/** Byte offset of the root partition in the built image (sector 2048). */
export const DEBIAN_IMAGE_PARTITION_OFFSET_BYTES = 1024 * 1024;

/**
 * Path of the Debian 12 cloud image built by scripts/build-image.sh: `$VIRTNODE_IMAGE_DIR/debian-12.qcow2` (set by
 * scripts/env.sh to the machine-wide /var/cache/virtnode/images; `<repo>/.cache/images` when unset), a link to
 * the keyed image. Building needs the network, which tests
 * do not have, so a missing image is an error with the command to run, never a skip.
 */
export function debianImage(): string {
  const dir = process.env['VIRTNODE_IMAGE_DIR'] || DEFAULT_DIR;
  const link = join(dir, 'debian-12.qcow2');
  if (!existsSync(link)) {
    throw new Error(
      `Debian test image not built (missing ${link}): run ./scripts/build-image.sh (as root, with network; same VIRTNODE_IMAGE_DIR) before the tests`,
    );
  }
  return realpathSync(link);
}
