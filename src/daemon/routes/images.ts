import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { BuildImageBody, Image, ImportBody, NameParams, Operation, PullBody, RemoveImageQuery, withErrors } from '../../api/schemas.ts';
import { imageView } from '../../api/views.ts';
import { instancesUsingImage, type StoreResult } from '../../images/store/index.ts';
import { invalid } from '../../lib/errors.ts';
import type { DaemonCore } from '../core.ts';
import { transferProgress } from '../../app/transfer-progress.ts';

const StoreResultSchema = Type.Object(
  { image: Image, outcome: Type.String(), sharedWith: Type.Array(Type.String()) },
  { additionalProperties: false },
);

function storeResult(result: StoreResult) {
  return { image: imageView(result.image), outcome: result.outcome, sharedWith: result.sharedWith };
}

export async function imageRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const tags = ['images'];
  app.get('/images', { schema: { tags, summary: 'stored images', response: withErrors({ 200: Type.Array(Image) }) } }, async () => core.images.list().map(imageView));

  app.get<{ Params: { name: string } }>(
    '/images/:name',
    { schema: { tags, summary: 'one image', params: NameParams, response: withErrors({ 200: Image }) } },
    async (request) => imageView(core.images.get(request.params.name)),
  );

  app.post<{ Body: { file: string; name?: string } }>(
    '/images/import',
    { schema: { tags, summary: 'import a file on the daemon host (an operation; progress entries are the lines `image import` prints, each 10%; result: the stored image)', body: ImportBody, response: withErrors({ 202: Operation }) } },
    async (request, reply) => {
      const { file, name } = request.body;
      const op = core.operations.start('image-import', name === undefined ? undefined : `images/${name}`, async (ctx) =>
        storeResult(await core.images.import(file, { ...(name === undefined ? {} : { name }), signal: ctx.signal, onProgress: transferProgress(ctx, 'Importing') })),
      );
      return reply.status(202).send(op);
    },
  );

  app.post<{ Body: { url: string; name?: string; sha256?: string; checksumsUrl?: string } }>(
    '/images/pull',
    { schema: { tags, summary: 'download an image, resumable, verified by sha256 (an operation; progress entries are the lines `image pull` prints, each 10%)', body: PullBody, response: withErrors({ 202: Operation }) } },
    async (request, reply) => {
      const { url, name, sha256, checksumsUrl } = request.body;
      const op = core.operations.start('image-pull', name === undefined ? undefined : `images/${name}`, async (ctx) => {
        const result = await core.images.pull(url, {
          ...(name === undefined ? {} : { name }),
          ...(sha256 === undefined ? {} : { sha256 }),
          ...(checksumsUrl === undefined ? {} : { checksumsUrl }),
          signal: ctx.signal,
          onProgress: transferProgress(ctx, 'Downloading'),
        });
        return { ...storeResult(result), verifiedBy: result.verifiedBy ?? null, downloadSha256: result.downloadSha256 };
      });
      return reply.status(202).send(op);
    },
  );

  app.post<{ Body: { recipe: string; name?: string; size?: string; packages?: string[] } }>(
    '/images/build',
    {
      schema: {
        tags,
        summary: 'build a generic cloud image from Debian packages (debootstrap; cached by recipe under VIRTNODE_IMAGE_DIR) and store it (an operation; progress entries are the build phases; result: the stored image)',
        body: BuildImageBody,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { buildImage, isImageName, validateBuild, IMAGE_NAMES } = await import('../../images/build/index.ts');
      const { parseSize } = await import('../../lib/units.ts');
      const { recipe, name, size, packages } = request.body;
      if (!isImageName(recipe)) throw invalid('recipe', `"${recipe}" is not a recipe virtnode knows`, `use ${IMAGE_NAMES.join(', ')}`);
      const sizeBytes = parseSize('size', size ?? '4G');
      validateBuild(recipe, sizeBytes, packages ?? []);
      const outDir = process.env['VIRTNODE_IMAGE_DIR'] || '/var/cache/virtnode/images';
      const op = core.operations.start('image-build', `images/${name ?? recipe}`, async (ctx) => {
        const built = await buildImage(recipe, {
          outDir,
          cacheDir: `${outDir}/cache`,
          sizeBytes,
          extraPackages: packages ?? [],
          signal: ctx.signal,
          onProgress: (phase, detail) => ctx.phase(phase, detail ?? ''),
        });
        const result = await core.images.import(built.path, { name: name ?? recipe, signal: ctx.signal, onProgress: (p) => ctx.transfer(p.received, p.total) });
        return { ...storeResult(result), cached: built.cached, recipeKey: built.recipeKey, path: built.path };
      });
      return reply.status(202).send(op);
    },
  );

  app.delete<{ Params: { name: string }; Querystring: { force?: boolean } }>(
    '/images/:name',
    {
      schema: {
        tags,
        summary: 'remove an image name (refused while instances use it, unless ?force=true)',
        params: NameParams,
        querystring: RemoveImageQuery,
        response: withErrors({
          200: Type.Object(
            { image: Image, fileDeleted: Type.Boolean(), keptFor: Type.Object({ names: Type.Array(Type.String()), instances: Type.Array(Type.String()) }, { additionalProperties: false }) },
            { additionalProperties: false },
          ),
        }),
      },
    },
    async (request) => {
      const result = core.images.remove(request.params.name, { force: request.query.force === true, usersOf: instancesUsingImage(core.db) });
      return { image: imageView(result.image), fileDeleted: result.fileDeleted, keptFor: result.keptFor };
    },
  );
}
