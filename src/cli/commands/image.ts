import type { Command } from 'commander';
import type { ImageRecord, ImageStore, StoreResult } from '../../images/store/index.ts';
import { formatSize } from '../../lib/units.ts';
import { imageView } from '../../api/views.ts';
import { keyValues, parseFormat, structured, table } from '../output.ts';

async function context(): Promise<{ store: ImageStore; usersOf: (imagePath: string) => string[] }> {
  const [{ statePaths }, { openDb }, { ImageStore, instancesUsingImage }] = await Promise.all([
    import('../../lib/paths.ts'),
    import('../../store/db.ts'),
    import('../../images/store/index.ts'),
  ]);
  const paths = statePaths();
  const db = openDb(paths.db);
  return { store: new ImageStore(paths, db), usersOf: instancesUsingImage(db) };
}

export { imageView } from '../../api/views.ts';

function verification(i: ImageRecord): string {
  if (i.verifiedBy === 'sha256') return 'yes (sha256 given with --sha256)';
  if (i.verifiedBy === 'checksums') return 'yes (sha256 from a SHA256SUMS file)';
  return /^https?:/.test(i.source) ? 'no (downloaded without a checksum)' : 'local file';
}

function stored(result: StoreResult, verb: string): string {
  const i = result.image;
  const what = `${i.format}, ${formatSize(i.virtualSize)} virtual, ${formatSize(i.fileSize)} on disk, sha256 ${i.sha256}`;
  if (result.outcome === 'already-present') return `Image ${i.name} already holds this content (${what})\n`;
  const shared = result.outcome === 'deduplicated' ? `; same content as ${result.sharedWith.length > 0 ? `image ${result.sharedWith.join(', ')}` : 'a stored file'}, stored once` : '';
  return `${verb} image ${i.name} (${what})${shared}\n`;
}

/** Ctrl-C aborts the operation cleanly (a pull keeps its partial file for the next attempt); a second one exits. */
function interruptible(): { signal: AbortSignal; done: () => void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130); // a second Ctrl-C: stop waiting for the clean-up
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    done: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('the image store: qcow2 and raw images, content-addressed by sha256');

  image
    .command('import')
    .description('add a local qcow2 or raw image (or an .xz/.gz of one) to the store')
    .argument('<file>', 'the image file')
    .option('--name <name>', 'image name (default: from the file name)')
    .action(async (file: string, o: { name?: string }) => {
      const { store } = await context();
      const { signal, done } = interruptible();
      try {
        // Imports are local and usually quick: progress only for someone watching a terminal.
        const onProgress = process.stderr.isTTY ? (await import('../../images/pull/progress.ts')).progressReporter(process.stderr, 'Importing') : undefined;
        const result = await store.import(file, { ...(o.name === undefined ? {} : { name: o.name }), ...(onProgress === undefined ? {} : { onProgress }), signal });
        process.stdout.write(stored(result, 'Imported'));
      } finally {
        done();
      }
    });

  image
    .command('build')
    .description('build a generic cloud image from Debian packages (debootstrap; cached by recipe) and store it')
    .argument('<recipe>', 'debian-12')
    .option('--name <name>', 'image name in the store (default: the recipe)')
    .option('--size <size>', 'virtual disk size', '4G')
    .option('--packages <list>', 'extra Debian packages, comma-separated')
    .action(async (recipe: string, o: { name?: string; size?: string; packages?: string }) => {
      const { buildImage, isImageName, IMAGE_NAMES } = await import('../../images/build/index.ts');
      const { parseSize } = await import('../../lib/units.ts');
      const { invalid } = await import('../../lib/errors.ts');
      if (!isImageName(recipe)) throw invalid('<recipe>', `"${recipe}" is not a recipe virtnode knows`, `use ${IMAGE_NAMES.join(', ')}`);
      const sizeBytes = parseSize('--size', o.size ?? '4G');
      const extraPackages = (o.packages ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
      for (const p of extraPackages) if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p)) throw invalid('--packages', `"${p}" is not a Debian package name`);
      const { store } = await context();
      const { signal, done } = interruptible();
      const outDir = process.env['VIRTNODE_IMAGE_DIR'] || '/var/cache/virtnode/images';
      const started = Date.now();
      try {
        const built = await buildImage(recipe, {
          outDir,
          cacheDir: `${outDir}/cache`,
          sizeBytes,
          extraPackages,
          signal,
          onProgress: (phase, detail) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${phase}${detail === undefined ? '' : ` ${detail}`}\n`),
        });
        process.stderr.write(built.cached ? `Reusing the cached build ${built.path}\n` : `Built ${built.path}\n`);
        const result = await store.import(built.path, { name: o.name ?? recipe, signal });
        process.stdout.write(stored(result, 'Stored'));
      } finally {
        done();
      }
    });

  image
    .command('pull')
    .description('download an image over HTTP(S), resumable, verified by sha256 before use')
    .argument('<url>', 'http:// or https:// URL of a qcow2 or raw image (or an .xz/.gz of one)')
    .option('--name <name>', 'image name (default: from the URL)')
    .option('--sha256 <hex>', 'the sha256 the download must have')
    .option('--checksums <url>', 'a SHA256SUMS file listing the download by its file name')
    .action(async (url: string, o: { name?: string; sha256?: string; checksums?: string }) => {
      const { store } = await context();
      const { progressReporter } = await import('../../images/pull/progress.ts');
      const { signal, done } = interruptible();
      try {
        const result = await store.pull(url, {
          ...(o.name === undefined ? {} : { name: o.name }),
          ...(o.sha256 === undefined ? {} : { sha256: o.sha256 }),
          ...(o.checksums === undefined ? {} : { checksumsUrl: o.checksums }),
          onProgress: progressReporter(process.stderr, 'Downloading'),
          signal,
        });
        if (result.verifiedBy === undefined && result.outcome !== 'already-present') {
          process.stderr.write(`warning: the download is unverified (no --sha256 or --checksums); its sha256 is ${result.downloadSha256}\n`);
        }
        process.stdout.write(stored(result, 'Pulled'));
      } finally {
        done();
      }
    });

  image
    .command('ls')
    .alias('list')
    .description('list stored images')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const format = parseFormat(o.format);
      const images = (await context()).store.list();
      if (format !== 'table') {
        process.stdout.write(await structured(images.map(imageView), format));
        return;
      }
      const rows = images.map((i) => [i.name, i.format, formatSize(i.virtualSize), formatSize(i.fileSize), i.sha256.slice(0, 12), i.source]);
      process.stdout.write(table(['NAME', 'FORMAT', 'VIRTUAL', 'SIZE', 'SHA256', 'SOURCE'], rows));
    });

  image
    .command('info')
    .description('show one image in detail')
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const format = parseFormat(o.format);
      const i = (await context()).store.get(name);
      if (format !== 'table') {
        process.stdout.write(await structured(imageView(i), format));
        return;
      }
      process.stdout.write(
        keyValues([
          ['Name', i.name],
          ['Format', i.format],
          ['Virtual size', `${formatSize(i.virtualSize)} (${i.virtualSize} bytes)`],
          ['File size', `${formatSize(i.fileSize)} (${i.fileSize} bytes)`],
          ['SHA256', i.sha256],
          ['Path', i.path],
          ['Source', i.source],
          ['Source SHA256', i.sourceSha256 === i.sha256 ? undefined : i.sourceSha256],
          ['Verified', verification(i)],
          ['Created', i.createdAt],
        ]),
      );
    });

  image
    .command('rm')
    .alias('remove')
    .description('remove an image (refused while instances use it)')
    .argument('<name>')
    .option('-f, --force', 'remove the name even if instances use it (their file stays until they are gone)')
    .action(async (name: string, o: { force?: boolean }) => {
      const { store, usersOf } = await context();
      const result = store.remove(name, { force: o.force === true, usersOf });
      const kept: string[] = [];
      if (result.keptFor.instances.length > 0) kept.push(`used by instance ${result.keptFor.instances.join(', ')}`);
      if (result.keptFor.names.length > 0) kept.push(`same content as image ${result.keptFor.names.join(', ')}`);
      process.stdout.write(`Removed image ${name}${kept.length > 0 ? ` (its file stays: ${kept.join('; ')})` : ''}\n`);
    });
}
