/** The image contract, implemented once over the core's image store. */
import { imageEndpoints } from '../api/contracts/images.ts';
import { imageView } from './views.ts';
import { checkPullArguments, instancesUsingImage, type StoreResult } from '../images/store/index.ts';
import { publicAddressesOnly } from '../images/pull/address-guard.ts';
import { invalid } from '../lib/errors.ts';
import type { AppCore } from './context.ts';
import { job } from './operations.ts';
import { checkRequestPath } from './request-paths.ts';
import { resource } from './resource.ts';
import { holdingHosts, publishHeldImages } from './images-cluster.ts';
import { transferProgress } from './transfer-progress.ts';

function stored(result: StoreResult) {
  return { image: imageView(result.image), outcome: result.outcome, sharedWith: result.sharedWith };
}

/** Where built images and their cache live (on the host doing the build). */
function imageDir(): string {
  return process.env['VIRTNODE_IMAGE_DIR'] || '/var/cache/virtnode/images';
}

export const images = resource('images', imageEndpoints, (core: AppCore) => {
  const store = core.images;
  /** In a cluster, the other hosts learn what this host's store holds now. */
  const published = async <T>(value: T): Promise<T> => {
    await publishHeldImages(core);
    return value;
  };
  return {
    async list() {
      const all = store.list().map(imageView);
      const where = await holdingHosts(core);
      return where === undefined ? all : all.map((i) => ({ ...i, hosts: where.get(i.sha256) ?? [] }));
    },

    async get({ name }) {
      return imageView(store.get(name));
    },

    async import({ file, name }, caller) {
      checkRequestPath(core.remotePaths, caller, 'file', file, 'file');
      store.importSource(file, name); // a missing file or an underivable name is refused now, not as a failed operation
      return job('image-import', name === undefined ? undefined : `images/${name}`, async (ctx) =>
        published(stored(await store.import(file, { ...(name === undefined ? {} : { name }), signal: ctx.signal, onProgress: transferProgress(ctx, 'Importing') }))),
      );
    },

    async pull({ url, name, sha256, checksumsUrl }, caller) {
      const options = { ...(name === undefined ? {} : { name }), ...(sha256 === undefined ? {} : { sha256 }), ...(checksumsUrl === undefined ? {} : { checksumsUrl }) };
      checkPullArguments(url, options); // bad arguments are refused now, not as a failed operation
      // A client over TCP must not make the daemon fetch from the host's own services or private networks.
      const guard = caller?.remote === true && !core.allowPrivatePulls ? publicAddressesOnly : undefined;
      if (guard !== undefined) for (const u of [url, checksumsUrl]) if (u !== undefined) await guard(new URL(u));
      return job('image-pull', name === undefined ? undefined : `images/${name}`, async (ctx) => {
        const result = await store.pull(url, { ...options, signal: ctx.signal, onProgress: transferProgress(ctx, 'Downloading'), ...(guard === undefined ? {} : { guard }) });
        return published({ ...stored(result), verifiedBy: result.verifiedBy ?? null, downloadSha256: result.downloadSha256 });
      });
    },

    async build({ recipe, name, size, packages }) {
      const [{ buildImage, isImageName, validateBuild, IMAGE_NAMES }, { parseSize }] = await Promise.all([import('../images/build/index.ts'), import('../lib/units.ts')]);
      if (!isImageName(recipe)) throw invalid('recipe', `"${recipe}" is not a recipe virtnode knows`, `use ${IMAGE_NAMES.join(', ')}`);
      const sizeBytes = parseSize('size', size ?? '4G');
      validateBuild(recipe, sizeBytes, packages ?? []);
      const outDir = imageDir();
      return job('image-build', `images/${name ?? recipe}`, async (ctx) => {
        const built = await buildImage(recipe, {
          outDir,
          cacheDir: `${outDir}/cache`,
          sizeBytes,
          extraPackages: packages ?? [],
          signal: ctx.signal,
          onProgress: (phase, detail) => ctx.phase(phase, detail ?? ''),
        });
        const result = await store.import(built.path, { name: name ?? recipe, signal: ctx.signal, onProgress: (p) => ctx.transfer(p.received, p.total) });
        return published({ ...stored(result), cached: built.cached, recipeKey: built.recipeKey, path: built.path });
      });
    },

    async remove({ name, force }) {
      const result = store.remove(name, { force: force === true, usersOf: instancesUsingImage(core.db) });
      await store.deleteRetired();
      return published({ image: imageView(result.image), fileDeleted: result.fileDeleted, keptFor: result.keptFor });
    },
  };
});
