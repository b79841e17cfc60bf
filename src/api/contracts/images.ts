/** The image store: `virtnode image ...`, `/images` in the REST API. */
import Type, { type Static } from 'typebox';
import { endpoints } from '../endpoint.ts';
import { BuildImageBody, Closed, Image, ImportBody, NameParams, PullBody, RemoveImageQuery } from '../schemas.ts';

const stored = {
  image: Image,
  outcome: Type.String({ description: 'stored, deduplicated (same content as another image, stored once) or already-present' }),
  sharedWith: Type.Array(Type.String(), { description: 'the images whose content it shares' }),
};

/** An image stored by import. */
export const StoredImage = Closed(stored);
export type StoredImageView = Static<typeof StoredImage>;
export const PulledImage = Closed({
  ...stored,
  verifiedBy: Type.Unsafe<string | null>({ type: 'string', nullable: true, description: 'sha256 or checksums; null when the download was not verified' }),
  downloadSha256: Type.String(),
});
export const BuiltImage = Closed({ ...stored, cached: Type.Boolean(), recipeKey: Type.String(), path: Type.String({ description: 'the built file, on the host that built it' }) });
export const RemovedImage = Closed({
  image: Image,
  fileDeleted: Type.Boolean(),
  keptFor: Closed({ names: Type.Array(Type.String()), instances: Type.Array(Type.String()) }),
});

export const imageEndpoints = endpoints({
  list: { method: 'GET', path: '/images', summary: 'stored images', response: Type.Array(Image) },
  get: { method: 'GET', path: '/images/:name', summary: 'one image', params: NameParams, response: Image },
  import: {
    method: 'POST',
    path: '/images/import',
    summary: 'import a file on the daemon host (an operation; progress entries are the lines `image import` prints, each 10%; result: the stored image)',
    body: ImportBody,
    response: StoredImage,
    operation: true,
  },
  pull: {
    method: 'POST',
    path: '/images/pull',
    summary: 'download an image, resumable, verified by sha256 (an operation; progress entries are the lines `image pull` prints, each 10%)',
    body: PullBody,
    response: PulledImage,
    operation: true,
  },
  build: {
    method: 'POST',
    path: '/images/build',
    summary:
      'build a generic cloud image from Debian packages (debootstrap; cached by recipe under VIRTNODE_IMAGE_DIR) and store it (an operation; progress entries are the build phases; result: the stored image)',
    body: BuildImageBody,
    response: BuiltImage,
    operation: true,
  },
  remove: {
    method: 'DELETE',
    path: '/images/:name',
    summary: 'remove an image name (refused while instances use it, unless ?force=true)',
    params: NameParams,
    query: RemoveImageQuery,
    response: RemovedImage,
  },
});
