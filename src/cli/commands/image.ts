import type { Command } from 'commander';
import type { StoredImageView } from '../../api/contracts/images.ts';
import type { ImageView } from '../../api/schemas.ts';
import { validateName } from '../../lib/names.ts';
import { formatSize } from '../../lib/units.ts';
import { api } from '../api.ts';
import { interruptibly } from '../interrupt.ts';
import { keyValues, printer, table } from '../output.ts';

async function images() {
  return (await api()).images;
}

/** Transfer progress as the work reports it, the same through a daemon or not (src/cli/progress.ts). */
async function transferOutput(label: string) {
  return (await import('../progress.ts')).transferOutput(process.stderr, label);
}

function verification(i: ImageView): string {
  if (i.verifiedBy === 'sha256') return 'yes (sha256 given with --sha256)';
  if (i.verifiedBy === 'checksums') return 'yes (sha256 from a SHA256SUMS file)';
  return /^https?:/.test(i.source) ? 'no (downloaded without a checksum)' : 'local file';
}

function stored(result: StoredImageView, verb: string): string {
  const i = result.image;
  const what = `${i.format}, ${formatSize(i.virtualSize)} virtual, ${formatSize(i.fileSize)} on disk, sha256 ${i.sha256}`;
  if (result.outcome === 'already-present') return `Image ${i.name} already holds this content (${what})\n`;
  const shared = result.outcome === 'deduplicated' ? `; same content as ${result.sharedWith.length > 0 ? `image ${result.sharedWith.join(', ')}` : 'a stored file'}, stored once` : '';
  return `${verb} image ${i.name} (${what})${shared}\n`;
}

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('the image store: qcow2 and raw images, content-addressed by sha256');

  image
    .command('import')
    .description('add a local qcow2 or raw image (or an .xz/.gz of one) to the store')
    .argument('<file>', 'the image file')
    .option('--name <name>', 'image name (default: from the file name)')
    .action(async (file: string, o: { name?: string }) => {
      if (o.name !== undefined) validateName('--name', o.name);
      // The daemon has another working directory (and over --remote, the path names a file on its host).
      const { resolve } = await import('node:path');
      const store = await images();
      // Imports are local and usually quick: progress only for someone watching a terminal.
      const progress = process.stderr.isTTY ? await transferOutput('Importing') : {};
      await interruptibly(async (signal) => {
        const result = await store.import({ file: resolve(file), ...(o.name === undefined ? {} : { name: o.name }) }, { signal, ...progress });
        process.stdout.write(stored(result, 'Imported'));
      });
    });

  image
    .command('build')
    .description('build a generic cloud image from Debian packages (debootstrap; cached by recipe) and store it')
    .argument('<recipe>', 'debian-12')
    .option('--name <name>', 'image name in the store (default: the recipe)')
    .option('--size <size>', 'virtual disk size', '4G')
    .option('--packages <list>', 'extra Debian packages, comma-separated')
    .action(async (recipe: string, o: { name?: string; size?: string; packages?: string }) => {
      const { isImageName, IMAGE_NAMES } = await import('../../images/build/index.ts');
      const { parseSize } = await import('../../lib/units.ts');
      const { invalid } = await import('../../lib/errors.ts');
      if (!isImageName(recipe)) throw invalid('<recipe>', `"${recipe}" is not a recipe virtnode knows`, `use ${IMAGE_NAMES.join(', ')}`);
      parseSize('--size', o.size ?? '4G');
      const extraPackages = (o.packages ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
      for (const p of extraPackages) if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p)) throw invalid('--packages', `"${p}" is not a Debian package name`);
      if (o.name !== undefined) validateName('--name', o.name);
      const store = await images();
      await interruptibly(async (signal) => {
        const built = await store.build(
          { recipe, ...(o.name === undefined ? {} : { name: o.name }), size: o.size ?? '4G', ...(extraPackages.length === 0 ? {} : { packages: extraPackages }) },
          { signal, onPhase: (phase, detail, elapsedMs) => process.stderr.write(`[${(elapsedMs / 1000).toFixed(1).padStart(6)} s] ${phase}${detail === '' ? '' : ` ${detail}`}\n`) },
        );
        process.stderr.write(built.cached ? `Reusing the cached build ${built.path}\n` : `Built ${built.path}\n`);
        process.stdout.write(stored(built, 'Stored'));
      });
    });

  image
    .command('pull')
    .description('download an image over HTTP(S), resumable, verified by sha256 before use')
    .argument('<url>', 'http:// or https:// URL of a qcow2 or raw image (or an .xz/.gz of one)')
    .option('--name <name>', 'image name (default: from the URL)')
    .option('--sha256 <hex>', 'the sha256 the download must have')
    .option('--checksums <url>', 'a SHA256SUMS file listing the download by its file name')
    .action(async (url: string, o: { name?: string; sha256?: string; checksums?: string }) => {
      const { checkPullArguments } = await import('../../images/store/index.ts');
      checkPullArguments(url, { ...(o.name === undefined ? {} : { name: o.name }), ...(o.sha256 === undefined ? {} : { sha256: o.sha256 }), ...(o.checksums === undefined ? {} : { checksumsUrl: o.checksums }) });
      const store = await images();
      const progress = await transferOutput('Downloading');
      await interruptibly(async (signal) => {
        const result = await store.pull(
          { url, ...(o.name === undefined ? {} : { name: o.name }), ...(o.sha256 === undefined ? {} : { sha256: o.sha256 }), ...(o.checksums === undefined ? {} : { checksumsUrl: o.checksums }) },
          { signal, ...progress },
        );
        if (result.verifiedBy === null && result.outcome !== 'already-present') {
          process.stderr.write(`warning: the download is unverified (no --sha256 or --checksums); its sha256 is ${result.downloadSha256}\n`);
        }
        process.stdout.write(stored(result, 'Pulled'));
      });
    });

  image
    .command('ls')
    .alias('list')
    .description('list stored images')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (o: { format?: string }) => {
      const print = printer(o.format);
      const all = await (await images()).list();
      // In a cluster, a HOSTS column says which online hosts hold the same content.
      const clustered = all.some((i) => i.hosts !== undefined);
      await print(all, () =>
        table(
          ['NAME', 'FORMAT', 'VIRTUAL', 'SIZE', 'SHA256', ...(clustered ? ['HOSTS'] : []), 'SOURCE'],
          all.map((i) => [i.name, i.format, formatSize(i.virtualSize), formatSize(i.fileSize), i.sha256.slice(0, 12), ...(clustered ? [(i.hosts ?? []).join(',')] : []), i.source]),
        ),
      );
    });

  image
    .command('info')
    .description('show one image in detail')
    .argument('<name>')
    .option('--format <format>', 'table, json or yaml', 'table')
    .action(async (name: string, o: { format?: string }) => {
      const print = printer(o.format);
      const i = await (await images()).get({ name: validateName('NAME', name) });
      await print(i, () =>
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
      const result = await (await images()).remove({ name: validateName('NAME', name), force: o.force === true });
      const kept: string[] = [];
      if (result.keptFor.instances.length > 0) kept.push(`used by instance ${result.keptFor.instances.join(', ')}`);
      if (result.keptFor.names.length > 0) kept.push(`same content as image ${result.keptFor.names.join(', ')}`);
      process.stdout.write(`Removed image ${name}${kept.length > 0 ? ` (its file stays: ${kept.join('; ')})` : ''}\n`);
    });
}
