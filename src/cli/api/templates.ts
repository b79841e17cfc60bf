import type { TemplateApi } from '../../client/templates.ts';
import { chooseBackend } from '../backend.ts';

let templates: Promise<TemplateApi> | undefined;

/** Templates and clones for this CLI call: the daemon when one runs (or --remote), else this process. */
export function templateApi(): Promise<TemplateApi> {
  templates ??= chooseBackend<TemplateApi>(
    async () => {
      const [{ LocalTemplates }, { TemplateService }, { loadInstanceService }] = await Promise.all([
        import('../local/templates.ts'),
        import('../../templates/service.ts'),
        import('../load-service.ts'),
      ]);
      const instances = await loadInstanceService();
      return new LocalTemplates(new TemplateService(instances), instances);
    },
    async (client) => new (await import('../../client/templates.ts')).RemoteTemplates(client),
  );
  return templates;
}
