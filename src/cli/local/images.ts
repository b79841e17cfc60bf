import { imageView } from '../../api/views.ts';
import type { BuildRequest, BuiltImage, ImageApi, ProgressSink, PulledImage, PullRequest, RemovedImage, StoredImage } from '../../client/images.ts';
import type { PhaseListener } from '../../client/operations.ts';
import type { ImageStore, StoreResult } from '../../images/store/index.ts';
import { progressReporter } from '../../images/pull/progress.ts';

function stored(result: StoreResult): StoredImage {
  return { image: imageView(result.image), outcome: result.outcome, sharedWith: result.sharedWith };
}

function reporter(progress: ProgressSink | undefined, label: string) {
  return progress === undefined ? {} : { onProgress: progressReporter(progress, label) };
}

/** The image store in this process (no daemon running, or VIRTNODE_NO_DAEMON=1). */
export class LocalImages implements ImageApi {
  readonly via = 'local' as const;
  private readonly store: ImageStore;
  private readonly usersOf: (imagePath: string) => string[];

  constructor(store: ImageStore, usersOf: (imagePath: string) => string[]) {
    this.store = store;
    this.usersOf = usersOf;
  }

  async list() {
    return this.store.list().map(imageView);
  }

  async get(name: string) {
    return imageView(this.store.get(name));
  }

  async import(file: string, options: { name?: string; progress?: ProgressSink; signal?: AbortSignal }): Promise<StoredImage> {
    return stored(
      await this.store.import(file, {
        ...(options.name === undefined ? {} : { name: options.name }),
        ...reporter(options.progress, 'Importing'),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      }),
    );
  }

  async pull(request: PullRequest, options: { progress?: ProgressSink; signal?: AbortSignal }): Promise<PulledImage> {
    const result = await this.store.pull(request.url, {
      ...(request.name === undefined ? {} : { name: request.name }),
      ...(request.sha256 === undefined ? {} : { sha256: request.sha256 }),
      ...(request.checksumsUrl === undefined ? {} : { checksumsUrl: request.checksumsUrl }),
      ...reporter(options.progress, 'Downloading'),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    return { ...stored(result), verifiedBy: result.verifiedBy ?? null, downloadSha256: result.downloadSha256 };
  }

  async build(request: BuildRequest, options: { onPhase?: PhaseListener; signal?: AbortSignal }): Promise<BuiltImage> {
    const [{ buildImage, isImageName, IMAGE_NAMES }, { parseSize }, { invalid }] = await Promise.all([
      import('../../images/build/index.ts'),
      import('../../lib/units.ts'),
      import('../../lib/errors.ts'),
    ]);
    const { recipe } = request;
    if (!isImageName(recipe)) throw invalid('<recipe>', `"${recipe}" is not a recipe virtnode knows`, `use ${IMAGE_NAMES.join(', ')}`);
    const outDir = process.env['VIRTNODE_IMAGE_DIR'] || '/var/cache/virtnode/images';
    const started = Date.now();
    const signal = options.signal === undefined ? {} : { signal: options.signal };
    const built = await buildImage(recipe, {
      outDir,
      cacheDir: `${outDir}/cache`,
      sizeBytes: parseSize('--size', request.size ?? '4G'),
      extraPackages: request.packages ?? [],
      ...signal,
      onProgress: (phase, detail) => options.onPhase?.(phase, detail ?? '', Date.now() - started),
    });
    const result = await this.store.import(built.path, { name: request.name ?? recipe, ...signal });
    return { ...stored(result), cached: built.cached, recipeKey: built.recipeKey, path: built.path };
  }

  async remove(name: string, options: { force?: boolean }): Promise<RemovedImage> {
    const result = this.store.remove(name, { force: options.force === true, usersOf: this.usersOf });
    return { image: imageView(result.image), fileDeleted: result.fileDeleted, keptFor: result.keptFor };
  }
}
