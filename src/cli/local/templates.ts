import { instanceView, sealView, templateView, type TemplateView } from '../../api/views.ts';
import type { PhaseListener } from '../../client/operations.ts';
import { orderedCloneOutcome, type CloneOptions, type CloneOutcome, type MadeTemplate, type TemplateApi } from '../../client/templates.ts';
import type { InstanceService } from '../../instances/service.ts';
import { PolicyRepository } from '../../store/policies.ts';
import type { TemplateService } from '../../templates/service.ts';

/** Templates and clones in this process (no daemon running, or VIRTNODE_NO_DAEMON=1). */
export class LocalTemplates implements TemplateApi {
  readonly via = 'local' as const;
  private readonly templates: TemplateService;
  private readonly instances: InstanceService;

  constructor(templates: TemplateService, instances: InstanceService) {
    this.templates = templates;
    this.instances = instances;
  }

  async list(): Promise<TemplateView[]> {
    return (await this.templates.list()).map((t) => templateView(t, this.templates.dependents(t)));
  }

  async get(name: string): Promise<TemplateView> {
    const t = await this.templates.get(name);
    return templateView(t, this.templates.dependents(t));
  }

  async verify(name: string): Promise<{ name: string; sha256: string; unchanged: boolean }> {
    const verified = await this.templates.verify(name);
    return { name: verified.template.name, sha256: verified.sha256, unchanged: verified.unchanged };
  }

  async create(instance: string, name: string | undefined, options: { onPhase?: PhaseListener; signal?: AbortSignal }): Promise<MadeTemplate> {
    const started = Date.now();
    const r = await this.templates.create(instance, name, {
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      onPhase: (phase, detail) => options.onPhase?.(phase, detail, Date.now() - started),
    });
    return { template: templateView(r.template, this.templates.dependents(r.template)), seal: sealView(r.seal) };
  }

  async remove(name: string): Promise<void> {
    await this.templates.remove(name);
  }

  async clone(source: string, name: string, options: CloneOptions): Promise<CloneOutcome> {
    const [{ cloneInstance }, { progressReporter, transferTracker }] = await Promise.all([import('../../clone/clone.ts'), import('../../images/pull/progress.ts')]);
    const tracker = options.progress === undefined ? undefined : transferTracker(progressReporter(options.progress, 'copying'));
    const r = await cloneInstance(
      this.instances.core,
      { source, name, linked: options.linked === true },
      { ...(options.signal === undefined ? {} : { signal: options.signal }), ...(tracker === undefined ? {} : { onProgress: (done: number, total: number) => tracker.update(done, total) }) },
    );
    if (r.mode === 'full') tracker?.finish();
    const instance = options.start === true ? await this.instances.start(name) : r.instance;
    return orderedCloneOutcome({
      instance: instanceView(instance, new PolicyRepository(this.instances.db).get(name)),
      clone: { source, from: r.from, mode: r.mode, ...(r.base === undefined ? {} : { base: r.base }), seal: r.seal === undefined ? null : sealView(r.seal) },
    });
  }
}
