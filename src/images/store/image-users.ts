import type { Db } from '../../store/db.ts';
import { InstanceRepository } from '../../store/instances.ts';
import { TemplateRepository } from '../../store/templates.ts';

/**
 * Instances and templates that use an image file: those `launch` recorded with `spec.image.path`, and any whose disk is the
 * file itself. (Overlays made by launch name the image as their backing file and record it in spec.image.)
 */
export function instancesUsingImage(db: Db): (imagePath: string) => string[] {
  return (imagePath) =>
    new InstanceRepository(db)
      .list()
      .filter((i) => (i.spec as { image?: { path?: string } }).image?.path === imagePath || i.spec.disks.some((d) => d.path === imagePath))
      .map((i) => i.name)
      .concat(new TemplateRepository(db).list().filter((t) => t.image?.path === imagePath).map((t) => `${t.name} (template)`));
}
