// Builds the default image (debian-12) into $VIRTNODE_IMAGE_DIR (scripts/env.sh: /var/cache/virtnode/images;
// <repo>/.cache/images when unset) and points debian-12.qcow2 at it.
// Needs root and the network (debootstrap): run it before the test suite enters its network namespace.
//   node scripts/build-image.ts [--size-gib N] [--package NAME ...] [--out DIR] [--cache DIR] [--no-link]
// --cache: where debootstrap package tarballs are kept (default <out>/cache).
// --no-link: leave debian-12.qcow2 pointing where it points (build a new recipe next to the one in use).
import { rename, rm, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage } from '../src/images/build/index.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
let outDir = process.env['VIRTNODE_IMAGE_DIR'] || join(repo, '.cache/images');
let cacheDir: string | undefined;
let sizeBytes: number | undefined;
const extraPackages: string[] = [];
let link = true;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const v = args[i + 1];
  if (a === '--size-gib' && v !== undefined) {
    sizeBytes = Number(v) * 1024 ** 3;
    i++;
  } else if (a === '--package' && v !== undefined) {
    extraPackages.push(v);
    i++;
  } else if (a === '--cache' && v !== undefined) {
    cacheDir = v;
    i++;
  } else if (a === '--no-link') {
    link = false;
  } else if (a === '--out' && v !== undefined) {
    outDir = v;
    i++;
  } else {
    console.error(`usage: node scripts/build-image.ts [--size-gib N] [--package NAME ...] [--out DIR] [--cache DIR] [--no-link]`);
    process.exit(2);
  }
}

const started = Date.now();
const controller = new AbortController();
process.once('SIGINT', () => controller.abort());
process.once('SIGTERM', () => controller.abort());
try {
  const image = await buildImage('debian-12', {
    outDir,
    cacheDir: cacheDir ?? join(outDir, 'cache'),
    extraPackages,
    ...(sizeBytes === undefined ? {} : { sizeBytes }),
    signal: controller.signal,
    onProgress: (phase, detail) =>
      console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${phase}${detail === undefined ? '' : ` ${detail}`}`),
  });
  const linkPath = join(outDir, 'debian-12.qcow2');
  if (link) {
    await rm(`${linkPath}.tmp`, { force: true });
    await symlink(basename(image.path), `${linkPath}.tmp`);
    await rename(`${linkPath}.tmp`, linkPath);
  }
  console.log(JSON.stringify({ ...image, ...(link ? { link: linkPath } : {}), seconds: (Date.now() - started) / 1000 }));
} catch (error) {
  const e = error as { code?: string; message?: string; hint?: string };
  console.error(`build-image: ${e.code ?? 'ERROR'}: ${e.message ?? String(error)}${e.hint ? `\nhint: ${e.hint}` : ''}`);
  process.exit(1);
}
