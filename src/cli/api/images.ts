import type { ImageApi } from '../../client/images.ts';
import { chooseBackend } from '../backend.ts';

let images: Promise<ImageApi> | undefined;

/** The image store for this CLI call: the daemon when one runs (or --remote), else this process. */
export function imageApi(): Promise<ImageApi> {
  images ??= chooseBackend<ImageApi>(
    async () => {
      const [{ LocalImages }, { statePaths }, { openDb }, { ImageStore, instancesUsingImage }] = await Promise.all([
        import('../local/images.ts'),
        import('../../lib/paths.ts'),
        import('../../store/db.ts'),
        import('../../images/store/index.ts'),
      ]);
      const paths = statePaths();
      const db = openDb(paths.db);
      return new LocalImages(new ImageStore(paths, db), instancesUsingImage(db));
    },
    async (client) => new (await import('../../client/images.ts')).RemoteImages(client),
  );
  return images;
}
