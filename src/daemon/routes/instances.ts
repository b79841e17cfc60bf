import { isAbsolute } from 'node:path';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import {
  CreateInstanceBody,
  type CreateInstanceBodyType,
  DeleteQuery,
  Instance,
  LaunchBody,
  type LaunchBodyType,
  NameParams,
  Operation,
  PolicyBody,
  type PolicyBodyType,
  StopBody,
  type StopBodyType,
  withErrors,
} from '../../api/schemas.ts';
import { instanceView } from '../../api/views.ts';
import { nicAddresses } from '../../instances/addresses.ts';
import type { Instance as InstanceModel } from '../../instances/model.ts';
import { invalid } from '../../lib/errors.ts';
import { validateName } from '../../lib/ids.ts';
import type { InstancePolicy } from '../../store/policies.ts';
import type { DaemonCore } from '../core.ts';
import { ResponseCache } from '../list-cache.ts';
import { launchSource } from '../../templates/launch-source.ts';

/** Lease-derived addresses in the cached list are at most this old (state changes show at once). */
const LIST_MAX_AGE_MS = 2_000;

type NameRequest = { Params: { name: string } };

/** Paths in a request are paths on the daemon's host; relative ones would depend on the daemon's directory. */
function absolute(field: string, path: string | undefined): void {
  if (path !== undefined && !isAbsolute(path)) throw invalid(field, `"${path}" is not an absolute path`, 'paths sent to the daemon must be absolute');
}

export async function instanceRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const tags = ['instances'];
  const service = core.instances;
  const view = (i: InstanceModel) => instanceView(i, core.policies.get(i.name));
  const done = <T>(value: T): T => {
    core.supervisor.poke();
    return value;
  };

  // Many clients listing many instances share one serialized list until something changes (see list-cache.ts).
  const listCache = new ResponseCache(core.db, core.events, { maxAgeMs: LIST_MAX_AGE_MS });
  app.get('/instances', { schema: { tags, summary: 'instances and their observed states', response: withErrors({ 200: Type.Array(Instance) }) } }, async (_request, reply) => {
    const body = await listCache.get(async () => {
      const policies = core.policies.all();
      const all = await service.list();
      const leaseMemo = new Map<string, ReadonlyArray<{ mac: string; address: string }>>();
      const addresses = await Promise.all(all.map((i) => nicAddresses(service, i, { leaseMemo })));
      // The route's own serializer (from the schema), once per build rather than once per request.
      return Buffer.from(reply.serialize(all.map((i, k) => instanceView(i, policies.get(i.name) ?? { autostart: false, restart: 'no' }, addresses[k]))) as string);
    });
    return reply.type('application/json; charset=utf-8').send(body);
  });

  app.get<NameRequest>('/instances/:name', { schema: { tags, summary: 'one instance (with the addresses its guest agent reports)', params: NameParams, response: withErrors({ 200: Instance }) } }, async (request) => {
    const instance = await service.get(request.params.name);
    return instanceView(instance, core.policies.get(instance.name), await nicAddresses(service, instance, { agent: true }));
  });

  app.post<{ Body: CreateInstanceBodyType }>(
    '/instances',
    { schema: { tags, summary: 'define an instance (`virtnode create`); `start: true` starts it too', body: CreateInstanceBody, response: withErrors({ 201: Instance }) } },
    async (request, reply) => {
      const { start, autostart, restartPolicy, ...fields } = request.body;
      for (const f of ['disk', 'kernel', 'initrd'] as const) absolute(f, fields[f]);
      let instance = await service.create(fields);
      if (autostart !== undefined || restartPolicy !== undefined) {
        core.policies.set(instance.name, { autostart: autostart ?? false, restart: restartPolicy ?? 'no' });
      }
      if (start === true) instance = await service.start(instance.name);
      return reply.status(201).send(done(view(instance)));
    },
  );

  app.post<{ Body: LaunchBodyType }>(
    '/instances/launch',
    {
      schema: {
        tags,
        summary: 'create and boot an instance from an image with its own cloud-init identity (an operation; progress entries are the readiness phases)',
        body: LaunchBody,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { launch } = await import('../../instances/launch.ts');
      const { validateLaunch } = await import('../../instances/launch-validate.ts');
      const b = request.body;
      const launchRequest = {
        image: b.image,
        ...(b.name === undefined ? {} : { name: b.name }),
        ...(b.cpus === undefined ? {} : { cpus: String(b.cpus) }),
        ...(b.memory === undefined ? {} : { memory: b.memory }),
        ...(b.diskSize === undefined ? {} : { diskSize: b.diskSize }),
        ...(b.sshAuthorizedKeys === undefined ? {} : { sshAuthorizedKeys: b.sshAuthorizedKeys }),
        ...(b.userData === undefined ? {} : { userDataText: b.userData }),
        ...(b.networkConfig === undefined ? {} : { networkConfigText: b.networkConfig }),
        ...(b.timezone === undefined ? {} : { timezone: b.timezone }),
        ...(b.passwordHash === undefined ? {} : { passwordHash: b.passwordHash }),
        ...(b.user === undefined ? {} : { user: b.user }),
        ...(b.accel === undefined ? {} : { accel: b.accel }),
        ...(b.seed === undefined ? {} : { seed: b.seed }),
        ...(b.networks === undefined ? {} : { networks: b.networks }),
        ...(b.ips === undefined ? {} : { ips: b.ips }),
      };
      // Bad input is answered 400 now, not as a failed operation; the name is fixed here so the client knows it.
      const valid = validateLaunch(launchRequest);
      const resolveImage = launchSource(service.core);
      await resolveImage(valid.image);
      const op = core.operations.start('launch', `instances/${valid.name}`, async (ctx) => {
        const result = await launch(service, resolveImage, { ...launchRequest, name: valid.name }, {
          noWait: b.wait === false,
          ...(b.timeoutSeconds === undefined ? {} : { timeoutMs: b.timeoutSeconds * 1000 }),
          signal: ctx.signal,
          onPhase: (phase, detail) => {
            ctx.phase(phase, detail);
            core.supervisor.poke();
          },
        });
        return {
          instance: view(result.instance),
          address: result.address ?? null,
          cloudInit: result.cloudInit === undefined ? null : result.cloudInit,
          warnings: result.valid.userDataWarnings.map((w) => `${w.path}: ${w.message}`),
          ssh: { identityFile: result.instance.spec.ssh?.identityFile ?? null, knownHosts: service.paths.knownHosts },
        };
      });
      return reply.status(202).send(done(op));
    },
  );

  app.post<NameRequest>(
    '/instances/:name/start',
    { schema: { tags, summary: 'start an instance', params: NameParams, response: withErrors({ 200: Instance }) } },
    async (request) => done(view(await service.start(request.params.name))),
  );

  for (const action of ['stop', 'restart'] as const) {
    app.post<NameRequest & { Body: StopBodyType | undefined }>(
      `/instances/:name/${action}`,
      {
        schema: {
          tags,
          summary:
            action === 'stop'
              ? 'shut down through the ACPI power button, forced after timeoutSeconds (an operation; result: {instance, method})'
              : 'stop and start again (an operation; result: {instance})',
          params: NameParams,
          body: Type.Union([StopBody, Type.Null()]),
          response: withErrors({ 202: Operation }),
        },
      },
      async (request, reply) => {
        const name = request.params.name;
        const body = request.body ?? {};
        const instance = await service.get(name); // a missing instance is a 404 now, not a failed operation
        const options = { force: body.force === true, ...(body.timeoutSeconds === undefined ? {} : { timeoutMs: body.timeoutSeconds * 1000 }) };
        const op = core.operations.start(action, `instances/${instance.name}`, async (ctx) => {
          if (action === 'stop') {
            const result = await service.stop(name, { ...options, signal: ctx.signal });
            return { instance: view(result.instance), method: result.method };
          }
          return { instance: view(await service.restart(name, { ...options, signal: ctx.signal })) };
        });
        return reply.status(202).send(done(op));
      },
    );
  }

  for (const action of ['pause', 'resume'] as const) {
    app.post<NameRequest>(
      `/instances/:name/${action}`,
      { schema: { tags, summary: action === 'pause' ? 'freeze a running instance' : 'continue a paused instance', params: NameParams, response: withErrors({ 200: Instance }) } },
      async (request) => done(view(await service[action](request.params.name))),
    );
  }

  app.patch<NameRequest & { Body: PolicyBodyType }>(
    '/instances/:name',
    { schema: { tags, summary: 'set autostart and the restart policy (`virtnode set`)', params: NameParams, body: PolicyBody, response: withErrors({ 200: Instance }) } },
    async (request) => {
      const instance = await service.get(request.params.name);
      const current = core.policies.get(instance.name);
      const next: InstancePolicy = { autostart: request.body.autostart ?? current.autostart, restart: request.body.restartPolicy ?? current.restart };
      core.policies.set(instance.name, next);
      return view(instance);
    },
  );

  app.delete<NameRequest & { Querystring: { force?: boolean } }>(
    '/instances/:name',
    {
      schema: {
        tags,
        summary: 'delete an instance and the disks virtnode made for it (?force=true kills it first)',
        params: NameParams,
        querystring: DeleteQuery,
        response: withErrors({ 200: Type.Object({ name: Type.String(), deleted: Type.Boolean() }, { additionalProperties: false }) }),
      },
    },
    async (request) => {
      const name = validateName('name', request.params.name);
      await service.delete(name, { force: request.query.force === true });
      return done({ name, deleted: true });
    },
  );
}
