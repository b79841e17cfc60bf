import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import type { CoreContext } from '../core/context.ts';
import { VirtnodeError } from '../lib/errors.ts';
import type { ImageResolver } from '../instances/launch.ts';
import { isImageKernel } from '../images/boot/extract.ts';

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
      const boot = template.defaults.boot;
      // A source that booted its image's own kernel directly passes that on as the same optional speed-up (a
      // container can still be made from the template); a kernel the user chose is what the template boots.
      const kernel = boot === undefined ? {} : isImageKernel(core.paths.images, boot.kernel) ? { ownKernel: boot } : { boot };
      return {
        name: template.name,
        sha256: template.sha256,
        path: template.diskPath,
        format: template.format,
        ...kernel,
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
    // An image whose own kernel was read out at import boots it directly (no firmware, no boot loader).
    return { name: image.name, sha256: image.sha256, path: image.path, format: image.format, ...(image.boot === undefined ? {} : { ownKernel: image.boot }) };
  };
}
