import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import type { CoreContext } from '../core/context.ts';
import { VirtnodeError } from '../lib/errors.ts';
import type { ImageResolver } from '../instances/launch.ts';

/**
 * What `launch NAME` boots from, for the CLI and the daemon alike: a template (its sealed disk, and the kernel
 * it booted with, if any) or an image in the image store.
 */
export function launchSource(core: CoreContext): ImageResolver {
  return async (nameOrPath) => {
    const template = core.repos.templates.get(nameOrPath);
    if (template?.defaults.container !== undefined) {
      throw new VirtnodeError('INVALID', `IMAGE: ${template.name} is a container template (a container's files, not a disk)`, {
        field: 'IMAGE',
        hint: `make containers of it with virtnode clone ${template.name} NEW`,
      });
    }
    if (template !== undefined) {
      return {
        name: template.name,
        sha256: template.sha256,
        path: template.diskPath,
        format: template.format,
        ...(template.defaults.boot === undefined ? {} : { boot: template.defaults.boot }),
        ...(template.warm === undefined ? {} : { warm: { diskPath: template.warm.diskPath, statePath: template.warm.statePath, model: template.warm.model } }),
      };
    }
    const { ImageStore } = await import('../images/store/index.ts');
    const store = new ImageStore(core.paths, core.db);
    if (existsSync(nameOrPath)) {
      throw new VirtnodeError('INVALID', `IMAGE: ${nameOrPath} is a file, not an image name`, {
        field: 'IMAGE',
        hint: `import it first: virtnode image import ${nameOrPath} --name ${basename(nameOrPath).split('.')[0]}`,
      });
    }
    const image = await store.resolve(nameOrPath);
    return { name: image.name, sha256: image.sha256, path: image.path, format: image.format };
  };
}
