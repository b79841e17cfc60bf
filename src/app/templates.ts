/** The template and clone contract, implemented once over the core (the daemon's routes and the CLI both call this). */
import { templateEndpoints } from '../api/contracts/templates.ts';
import { instanceView, sealView, templateView } from './views.ts';
import { checkClone, cloneInstance } from '../clone/clone.ts';
import { transferTracker } from '../images/pull/progress.ts';
import { validateName } from '../lib/names.ts';
import type { Template } from '../templates/model.ts';
import { TemplateService } from '../templates/service.ts';
import type { AppCore } from './context.ts';
import { job } from './operations.ts';
import { resource } from './resource.ts';
import { transferProgress } from './transfer-progress.ts';

export const templates = resource('templates', templateEndpoints, (core: AppCore) => {
  let service: TemplateService | undefined;
  const templateService = async () => {
    service ??= new TemplateService(core.core);
    await core.instances.ensureReconciled();
    return service;
  };
  const view = (t: TemplateService, template: Template) => templateView(template, t.dependents(template));

  return {
    async list() {
      const t = await templateService();
      return (await t.list()).map((x) => view(t, x));
    },

    async get({ name }) {
      const t = await templateService();
      return view(t, await t.get(validateName('name', name)));
    },

    async verify({ name }) {
      const verified = await (await templateService()).verify(validateName('name', name));
      return { name: verified.template.name, sha256: verified.sha256, unchanged: verified.unchanged };
    },

    async create(input) {
      const t = await templateService();
      // The core's own checks (and messages), so a refusal comes now, not as a failed operation.
      const { source, name } = await t.checkCreate(input.instance, input.name);
      return job('template-create', `instances/${source}`, async (ctx) => {
        const r = await t.create(source, name, { signal: ctx.signal, onPhase: (phase, detail) => ctx.phase(phase, detail), ...(input.warm === true ? { warm: true } : {}) });
        return { template: view(t, r.template), seal: sealView(r.seal) };
      });
    },

    async delete({ name }) {
      validateName('name', name);
      await (await templateService()).remove(name);
      return { name, deleted: true };
    },

    async clone(input) {
      await templateService();
      const { sourceName: source, name } = await checkClone(core.core, { source: input.source, name: input.name });
      const linked = input.linked === true;
      return job('clone', `instances/${name}`, async (ctx) => {
        // Copy progress as lines each 10% (progress entries), so the CLI prints the same in this process and through the daemon.
        const tracker = transferTracker(transferProgress(ctx, 'copying'));
        const r = await cloneInstance(core.core, { source, name, linked }, { signal: ctx.signal, onProgress: (bytes, total) => tracker.update(bytes, total) });
        if (r.mode === 'full') tracker.finish();
        return {
          instance: instanceView(r.instance, core.policies.get(r.instance.name)),
          clone: { source, from: r.from, mode: r.mode, ...(r.base === undefined ? {} : { base: r.base }), seal: r.seal === undefined ? null : sealView(r.seal) },
        };
      });
    },
  };
});
