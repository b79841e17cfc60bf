import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where virtnode's own files are. It runs from its sources (src/**.ts under Node's type stripping, as the tests
 * do) or from the bundle `npm run build` makes (dist/virtnode.js: one module, so import.meta.url is the
 * bundle's in all of the code). Files it reads or runs at run time are found from here, never from the
 * location of the module that wants them.
 */
const FROM_SOURCES = import.meta.url.endsWith('.ts');

/** The checkout (or the installed package): bin/, src/, scripts/, dist/. */
export const INSTALL_ROOT = fileURLToPath(new URL(FROM_SOURCES ? '../../' : '../', import.meta.url));

/** A file shipped with virtnode, by its path in the checkout (e.g. `src/templates/seal.sh`). */
export function installFile(relative: string): string {
  return join(INSTALL_ROOT, relative);
}

/** The built web UI (`npm run build`, web/vite.config.ts). */
export const WEB_UI_DIR = join(INSTALL_ROOT, 'dist', 'web-ui');

/** The program QEMU runs for NoCloud over HTTP (src/cloudinit/metadata-responder.ts), or its bundle in dist/. */
export const METADATA_RESPONDER = installFile(FROM_SOURCES ? 'src/cloudinit/metadata-responder.ts' : 'dist/metadata-responder.js');
