import { readdir, rm, mkdtemp } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildImage } from '../../src/images/build/index.ts';
import { killProcessesRootedUnder, mountsUnder } from '../../src/images/build/mounts.ts';
import { debianImage } from '../helpers/debian-image.ts';

/**
 * The builder against the real cache made by scripts/build-image.sh (no network here: only cached inputs are used).
 */
const ABORT_AFTER_BOOTSTRAP_START_MS = 45_000;
let scratch = '';

afterAll(async () => {
  if (scratch === '') return;
  await killProcessesRootedUnder(scratch);
  if ((await mountsUnder(scratch)).length === 0) await rm(scratch, { recursive: true, force: true });
});

describe('buildImage with the built cache', () => {
  it('a second build of the default recipe returns the cached image at once', async () => {
    const image = debianImage();
    const outDir = dirname(image);
    const started = Date.now();
    const again = await buildImage('debian-12', { outDir, cacheDir: join(outDir, 'cache') });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(again.cached).toBe(true);
    expect(again.path).toBe(image);
    expect(again.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(again.sizeBytes).toBe(4 * 1024 ** 3);
  });

  it('cancelled in the middle of debootstrap: rejects, and leaves no mounts, processes or build directory', async () => {
    const outDir = dirname(debianImage());
    const cacheDir = join(outDir, 'cache');
    if (!(await readdir(cacheDir)).some((f) => f.endsWith('.tgz'))) {
      throw new Error(`no debootstrap tarball in ${cacheDir}: run ./scripts/build-image.sh first`);
    }
    scratch = await mkdtemp(join(outDir, '.test-abort-'));
    const controller = new AbortController();
    const phases: string[] = [];
    const build = buildImage('debian-12', {
      outDir: scratch,
      cacheDir,
      sizeBytes: 2 * 1024 ** 3, // another recipe key: not cached
      signal: controller.signal,
      onProgress: (phase) => {
        phases.push(phase);
        if (phase === 'bootstrap') setTimeout(() => controller.abort(), ABORT_AFTER_BOOTSTRAP_START_MS);
        if (phase === 'download') controller.abort(); // the cache must have the tarball; never go to the network
      },
    });
    await expect(build).rejects.toThrow();
    expect(phases).toEqual(['bootstrap']);
    expect(await mountsUnder(scratch)).toEqual([]);
    expect(await killProcessesRootedUnder(scratch)).toBe(0);
    expect(await readdir(scratch)).toEqual([]);
  }, 300_000);
});
