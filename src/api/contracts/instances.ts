/** The instance lifecycle: `virtnode create/launch/start/stop/...`, `/instances` in the REST API. */
import Type from 'typebox';
import { endpoints } from '../endpoint.ts';
import { Closed, CreateInstanceBody, StringEnum, DeleteQuery, Instance, LaunchBody, NameParams, PolicyBody, ResourcesBody, ResourcesResult, StopBody } from '../schemas.ts';
import { MOVE_DOWNTIME_LIMIT_MS } from '../../instances/model.ts';

const nullable = <T>(schema: object) => Type.Unsafe<T | null>({ ...schema, nullable: true });

export const LaunchResult = Closed({
  instance: Instance,
  address: nullable<string>({ type: 'string', description: 'where SSH answers (host:port), once known' }),
  cloudInit: nullable<{ status: string; datasource?: string | undefined; detail?: string | undefined }>({
    type: 'object',
    properties: { status: { type: 'string' }, datasource: { type: 'string' }, detail: { type: 'string' } },
    required: ['status'],
    additionalProperties: false,
    description: "cloud-init's own result, when the launch waited for it",
  }),
  warnings: Type.Array(Type.String(), { description: 'what the user-data check found that does not stop the launch' }),
  ssh: Type.Object(
    { identityFile: nullable<string>({ type: 'string' }), knownHosts: Type.String() },
    { additionalProperties: false, description: 'how to reach it: virtnode\'s key and known_hosts (the host keys are known before first contact)' },
  ),
});

export const StopResult = Closed({ instance: Instance, method: Type.String({ description: 'acpi, forced or forced-after-timeout' }) });
export const RestartResult = Closed({ instance: Instance });
export const Deleted = Closed({ name: Type.String(), deleted: Type.Boolean() });

/** POST /instances/{name}/move: the cluster host to move an instance to (live when it runs, offline when stopped). */
export const MoveBody = Closed({
  host: Type.String({ maxLength: 63, description: 'the cluster host to move it to (`virtnode cluster ls`)' }),
  timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'the move is given up (and undone) after this long (default 600); not once post-copy has started' })),
  postcopy: Type.Optional(
    StringEnum(['auto', 'never'], {
      description: "auto: switch to post-copy when pre-copy cannot converge, instead of slowing the guest down (auto-converge) (the guest then runs on the target while its memory follows; it is lost if the target or the link dies before the end and recovery fails); never (the default): pre-copy only, which can always be undone",
    }),
  ),
  bandwidthMiBs: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_048_576, description: 'the memory migration\'s bandwidth cap, MiB/s (default 1024)' })),
  downtimeLimitMs: Type.Optional(
    Type.Integer({
      minimum: MOVE_DOWNTIME_LIMIT_MS.min,
      maximum: MOVE_DOWNTIME_LIMIT_MS.max,
      description: `a live move: the longest the guest may stay stopped for the last round of memory, ms (QEMU's downtime-limit; default ${MOVE_DOWNTIME_LIMIT_MS.default}). Higher ends a busy guest's move sooner with a longer pause`,
    }),
  ),
  offline: Type.Optional(Type.Boolean({ description: 'only an offline move: a stopped VM (its disks copied); a running one is refused. A stopped VM moves offline without it too' })),
});
export const MoveResult = Closed({
  instance: Instance,
  from: Type.String({ description: 'the host it ran on' }),
  to: Type.String({ description: 'the host it runs on now' }),
  totalMs: Type.Integer({ description: 'from the first step to the guest running on the new host' }),
  migrationMs: Type.Integer({ description: 'the memory migration, from its start to the guest running on the new host' }),
  downtimeMs: nullable<number>({ type: 'integer', description: "from the source's vCPUs stopping to the target running them; null offline, or when the target no longer knew when it ran them (its answer to resume was lost and its daemon restarted)" }),
  bytesSent: Type.Integer({ description: 'memory bytes sent' }),
  diskBytes: Type.Integer({ description: 'disk bytes copied' }),
  postcopy: Type.Boolean({ description: 'the move switched to post-copy' }),
  offline: Type.Boolean({ description: 'moved stopped (its disks copied), not live' }),
  switchover: Type.Optional(
    Closed(
      {
        pausedMs: Type.Optional(Type.Integer({ description: 'with copied disks: the source paused before the switch-over' })),
        continuedMs: Type.Optional(Type.Integer({ description: 'with copied disks: the disk mirrors finished, the migration went on' })),
        sourceCompletedMs: Type.Optional(Type.Integer({ description: "the source's QEMU had sent the rest (its MIGRATION completed)" })),
        resumeAskedMs: Type.Optional(Type.Integer({ description: 'the target was asked to resume the guest' })),
        arrivedMs: Type.Optional(Type.Integer({ description: 'the target had the memory loaded' })),
        runningMs: Type.Integer({ description: 'the guest ran on the target (the downtime)' }),
      },
      { description: "a live move: where the downtime went, ms from the source's vCPUs stopping" },
    ),
  ),
});

export const instanceEndpoints = endpoints({
  list: { method: 'GET', path: '/instances', summary: 'instances and their observed states', response: Type.Array(Instance), shared: true },
  get: { method: 'GET', path: '/instances/:name', summary: 'one instance (with the addresses its guest agent reports)', params: NameParams, response: Instance },
  create: {
    method: 'POST',
    path: '/instances',
    summary: 'define an instance (`virtnode create`); `start: true` starts it too',
    body: CreateInstanceBody,
    response: Instance,
    status: 201,
  },
  launch: {
    method: 'POST',
    path: '/instances/launch',
    summary: 'create and boot an instance from an image with its own cloud-init identity (an operation; progress entries are the readiness phases)',
    body: LaunchBody,
    response: LaunchResult,
    operation: true,
  },
  start: { method: 'POST', path: '/instances/:name/start', summary: 'start an instance', params: NameParams, response: Instance },
  stop: {
    method: 'POST',
    path: '/instances/:name/stop',
    summary: 'shut down through the ACPI power button, forced after timeoutSeconds (an operation; result: {instance, method})',
    params: NameParams,
    body: StopBody,
    bodyOptional: true,
    response: StopResult,
    operation: true,
  },
  restart: {
    method: 'POST',
    path: '/instances/:name/restart',
    summary: 'stop and start again (an operation; result: {instance})',
    params: NameParams,
    body: StopBody,
    bodyOptional: true,
    response: RestartResult,
    operation: true,
  },
  pause: { method: 'POST', path: '/instances/:name/pause', summary: 'freeze a running instance', params: NameParams, response: Instance },
  resume: { method: 'POST', path: '/instances/:name/resume', summary: 'continue a paused instance', params: NameParams, response: Instance },
  setPolicy: {
    method: 'PATCH',
    path: '/instances/:name',
    summary: 'set autostart and the restart policy (`virtnode set`)',
    params: NameParams,
    body: PolicyBody,
    response: Instance,
  },
  resources: {
    method: 'POST',
    path: '/instances/:name/resources',
    summary: 'change vCPUs and memory (`virtnode set NAME cpus=N memory=SIZE`): vCPUs at the next boot; less memory than the guest booted with at once (balloon), more at the next boot',
    params: NameParams,
    body: ResourcesBody,
    response: ResourcesResult,
  },
  move: {
    method: 'POST',
    path: '/instances/:name/move',
    summary: 'in a cluster: move a running instance live, or a stopped VM offline (its disks copied), to another host (an operation; progress entries are the move\'s phases; result: {instance, from, to, totalMs, migrationMs, downtimeMs, bytesSent, diskBytes, postcopy, offline})',
    params: NameParams,
    body: MoveBody,
    response: MoveResult,
    operation: true,
  },
  delete: {
    method: 'DELETE',
    path: '/instances/:name',
    summary: 'delete an instance and the disks virtnode made for it (?force=true kills it first)',
    params: NameParams,
    query: DeleteQuery,
    response: Deleted,
  },
});
