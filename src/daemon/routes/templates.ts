import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { CloneBody, type CloneBodyType, CreateTemplateBody, type CreateTemplateBodyType, NameParams, Operation, Template, withErrors } from '../../api/schemas.ts';
import { instanceView, templateView } from '../../api/views.ts';
import { invalid, VirtnodeError } from '../../lib/errors.ts';
import { validateName } from '../../lib/ids.ts';
import type { SealResult } from '../../templates/seal.ts';
import type { TemplateService } from '../../templates/service.ts';
import type { DaemonCore } from '../core.ts';

type NameRequest = { Params: { name: string } };

const sealView = (s: SealResult) => ({ method: s.method, root: s.root ?? null, changes: s.changes, summary: s.summary });

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
  /** Templates and instances share one namespace. */
  const assertFree = (t: TemplateService, field: string, name: string) => {
    if (t.repo.get(name) !== undefined) throw new VirtnodeError('CONFLICT', `${field}: template ${name} already exists`, { field, hint: 'choose another name' });
    if (core.instances.repo.get(name) !== undefined) throw new VirtnodeError('CONFLICT', `${field}: instance ${name} already exists`, { field, hint: 'templates and instances share one namespace: choose another name' });
  };

  app.get('/templates', { schema: { tags, summary: 'templates, with the instances whose disks sit on each', response: withErrors({ 200: Type.Array(Template) }) } }, async () => {
    const t = await templates();
    return (await t.list()).map((x) => templateView(x, t.dependents(x)));
  });

  app.get<NameRequest>('/templates/:name', { schema: { tags, summary: 'one template', params: NameParams, response: withErrors({ 200: Template }) } }, async (request) =>
    view(validateName('name', request.params.name)),
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
      const source = validateName('instance', request.body.instance);
      const name = validateName('name', request.body.name ?? source);
      await core.instances.get(source); // a missing instance is a 404 now, not a failed operation
      if (t.repo.get(name) !== undefined) throw new VirtnodeError('CONFLICT', `name: template ${name} already exists`, { field: 'name', hint: 'choose another name, or remove it first' });
      if (name !== source) assertFree(t, 'name', name);
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
          'a new instance from a stopped instance (its copy sealed offline) or a template, with an identity of its own; linked: a qcow2 overlay instead of a full copy (an operation; result: {instance, clone})',
        params: NameParams,
        body: CloneBody,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const t = await templates();
      const { cloneInstance } = await import('../../clone/clone.ts');
      const source = validateName('name', request.params.name);
      const name = validateName('name', request.body.name);
      if (t.repo.get(source) === undefined) await core.instances.get(source); // 404 now when it is neither
      if (name === source) throw invalid('name', `"${name}" is the source's own name`, 'give the clone a new name');
      assertFree(t, 'name', name);
      const linked = request.body.linked === true;
      const op = core.operations.start('clone', `instances/${name}`, async (ctx) => {
        const r = await cloneInstance(core.instances, { source, name, linked }, { signal: ctx.signal, onProgress: (bytes, total) => ctx.transfer(bytes, total) });
        return {
          instance: instanceView(r.instance, core.policies.get(r.instance.name)),
          clone: { source, from: r.from, mode: r.mode, ...(r.base === undefined ? {} : { base: r.base }), seal: r.seal === undefined ? null : sealView(r.seal) },
        };
      });
      return reply.status(202).send(done(op));
    },
  );
}
