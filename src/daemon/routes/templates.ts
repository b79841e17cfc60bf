import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { CloneBody, type CloneBodyType, CreateTemplateBody, type CreateTemplateBodyType, NameParams, Operation, Template, withErrors } from '../../api/schemas.ts';
import { instanceView, sealView, templateView } from '../../api/views.ts';
import { validateName } from '../../lib/ids.ts';
import type { TemplateService } from '../../templates/service.ts';
import type { DaemonCore } from '../core.ts';
import { transferProgress } from '../../app/transfer-progress.ts';

type NameRequest = { Params: { name: string } };

/** Templates (`virtnode template ...`) and clones (`virtnode clone`): long work, so operations. */
export async function templateRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const tags = ['templates'];
  let service: TemplateService | undefined;
  const templates = async () => {
    const { TemplateService } = await import('../../templates/service.ts');
    service ??= new TemplateService(core.instances);
    await core.instances.ensureReconciled();
    return service;
  };
  const view = async (name: string) => {
    const t = await templates();
    const template = await t.get(name);
    return templateView(template, t.dependents(template));
  };
  const done = <T>(value: T): T => {
    core.supervisor.poke();
    return value;
  };

  app.get('/templates', { schema: { tags, summary: 'templates, with the instances whose disks sit on each', response: withErrors({ 200: Type.Array(Template) }) } }, async () => {
    const t = await templates();
    return (await t.list()).map((x) => templateView(x, t.dependents(x)));
  });

  app.get<NameRequest>('/templates/:name', { schema: { tags, summary: 'one template', params: NameParams, response: withErrors({ 200: Template }) } }, async (request) =>
    view(validateName('name', request.params.name)),
  );

  app.post<NameRequest>(
    '/templates/:name/verify',
    {
      schema: {
        tags,
        summary: 'recompute the checksum of the template\'s disk (`template info --verify`): unchanged, or its sha256 now',
        params: NameParams,
        response: withErrors({ 200: Type.Object({ name: Type.String(), sha256: Type.String(), unchanged: Type.Boolean() }, { additionalProperties: false }) }),
      },
    },
    async (request) => {
      const verified = await (await templates()).verify(validateName('name', request.params.name));
      return { name: verified.template.name, sha256: verified.sha256, unchanged: verified.unchanged };
    },
  );

  app.post<{ Body: CreateTemplateBodyType }>(
    '/templates',
    {
      schema: {
        tags,
        summary: 'turn an instance into a template: stop it, seal its disk (guest agent, else offline), keep the disk read-only, remove the instance (an operation; result: {template, seal})',
        body: CreateTemplateBody,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const t = await templates();
      const { assertNoSnapshots } = await import('../../clone/snapshot-guard.ts');
      // The core's own checks (and messages), so a refusal is a 4xx now, not a failed operation.
      const { source, name } = await t.checkCreate(request.body.instance, request.body.name);
      assertNoSnapshots(core.db, source, 'make a template of');
      const op = core.operations.start('template-create', `instances/${source}`, async (ctx) => {
        const r = await t.create(source, name, { signal: ctx.signal, onPhase: (phase, detail) => ctx.phase(phase, detail) });
        return { template: templateView(r.template, t.dependents(r.template)), seal: sealView(r.seal) };
      });
      return reply.status(202).send(done(op));
    },
  );

  app.delete<NameRequest>(
    '/templates/:name',
    {
      schema: {
        tags,
        summary: 'remove a template (refused while instances sit on it)',
        params: NameParams,
        response: withErrors({ 200: Type.Object({ name: Type.String(), deleted: Type.Boolean() }, { additionalProperties: false }) }),
      },
    },
    async (request) => {
      const name = validateName('name', request.params.name);
      await (await templates()).remove(name);
      return { name, deleted: true };
    },
  );

  app.post<NameRequest & { Body: CloneBodyType }>(
    '/instances/:name/clone',
    {
      schema: {
        tags: ['instances', ...tags],
        summary:
          'a new instance from a stopped instance (its copy sealed offline) or a template, with an identity of its own; linked: a qcow2 overlay instead of a full copy (an operation; progress entries are the lines of the copy, each 10%; result: {instance, clone})',
        params: NameParams,
        body: CloneBody,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      await templates();
      const [{ checkClone, cloneInstance }, { transferTracker }] = await Promise.all([import('../../clone/clone.ts'), import('../../images/pull/progress.ts')]);
      // The core's own checks (and messages), so a refusal is a 4xx now, not a failed operation.
      const { sourceName: source, name } = await checkClone(core.instances, { source: request.params.name, name: request.body.name });
      const linked = request.body.linked === true;
      const op = core.operations.start('clone', `instances/${name}`, async (ctx) => {
        // Copy progress as the CLI prints it (a line each 10%), so a CLI following the operation shows the same.
        const tracker = transferTracker(transferProgress(ctx, 'copying'));
        const r = await cloneInstance(core.instances, { source, name, linked }, { signal: ctx.signal, onProgress: (bytes, total) => tracker.update(bytes, total) });
        if (r.mode === 'full') tracker.finish();
        return {
          instance: instanceView(r.instance, core.policies.get(r.instance.name)),
          clone: { source, from: r.from, mode: r.mode, ...(r.base === undefined ? {} : { base: r.base }), seal: r.seal === undefined ? null : sealView(r.seal) },
        };
      });
      return reply.status(202).send(done(op));
    },
  );
}
