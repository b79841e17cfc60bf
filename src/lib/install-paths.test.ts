import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { INSTALL_ROOT, METADATA_RESPONDER, WEB_UI_DIR, installFile } from './install-paths.ts';

describe('install paths (from the sources)', () => {
  it('finds the checkout, the files shipped in it and the responder source', () => {
    expect((JSON.parse(readFileSync(join(INSTALL_ROOT, 'package.json'), 'utf8')) as { name: string }).name).toBe('virtnode');
    expect(existsSync(installFile('src/templates/seal.sh'))).toBe(true);
    expect(METADATA_RESPONDER).toBe(join(INSTALL_ROOT, 'src/cloudinit/metadata-responder.ts'));
    expect(existsSync(METADATA_RESPONDER)).toBe(true);
    expect(WEB_UI_DIR).toBe(join(INSTALL_ROOT, 'dist/web-ui'));
  });
});
