import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import {
  CheckedNameParams,
  ConvertVolumeBody,
  CreatePoolBody,
  CreateVolumeBody,
  type CreateVolumeBodyType,
  ExportVolumeBody,
  ImportVolumeBody,
  InstanceDisk,
  Operation,
  Pool,
  ResizeVolumeBody,
  Volume,
  VolumeCheck,
  VolumeResize,
  VolumesQuery,
  withErrors,
} from '../../api/schemas.ts';
import { instanceDiskView, poolView, volumeCheckView, volumeView } from '../../api/views.ts';
import { isAbsolute } from 'node:path';
import { invalid } from '../../lib/errors.ts';
import type { DaemonCore } from '../core.ts';
import { lazyStorageService } from './storage-service.ts';

type NameRequest = { Params: { name: string } };

/** A file named in a request is on the daemon's host; a relative path would depend on the daemon's cwd. */
function absoluteFile(file: string): string {
  if (!isAbsolute(file)) throw invalid('file', `"${file}" is not an absolute path`, 'name the file by its full path on the daemon\'s host (the CLI resolves relative paths itself)');
  return file;
}

/** Routes whose core function checks the names itself (as the CLI does, naming the field: volume, instance). */
const checked = { nameCheckedByCore: true };

/**
 * Pools and volumes (`virtnode pool ...`, `virtnode volume ...`). Names are checked by the core (which names the
 * field as the CLI does); paths are on the daemon's host and must be absolute. Copies (convert, import, export)
 * are operations; their bad input is answered at once.
 */
export async function storageRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const tags = ['storage'];
  const storage = lazyStorageService(core);
  const volumes = () => import('../../storage/volumes.ts');
  const pools = () => import('../../storage/pools.ts');

  app.get('/pools', { schema: { tags, summary: 'pools with the size, use and free space of the filesystem holding each', response: withErrors({ 200: Type.Array(Pool) }) } }, async () => {
    const { listPools } = await pools();
    return listPools(await storage()).map((p) => poolView(p));
  });

  app.post<{ Body: { name: string; path: string } }>(
    '/pools',
    { schema: { tags, summary: 'register an existing directory (absolute path on the daemon\'s host) as a pool (`virtnode pool create`)', body: CreatePoolBody, response: withErrors({ 201: Pool }) } },
    async (request, reply) => {
      const { createPool, poolInfo } = await pools();
      const s = await storage();
      const pool = createPool(s, request.body.name, request.body.path);
      return reply.status(201).send(poolView(poolInfo(s, pool.name)));
    },
  );

  app.get<NameRequest>('/pools/:name', { schema: { tags, summary: 'one pool, with its volumes', params: CheckedNameParams, response: withErrors({ 200: Pool }) } }, async (request) => {
    const { poolInfo } = await pools();
    return poolView(poolInfo(await storage(), request.params.name));
  });

  app.delete<NameRequest>(
    '/pools/:name',
    {
      schema: {
        tags,
        summary: 'forget a pool (its directory stays); refused while it holds volumes',
        params: CheckedNameParams,
        response: withErrors({ 200: Type.Object({ name: Type.String(), deleted: Type.Boolean() }, { additionalProperties: false }) }),
      },
    },
    async (request) => {
      const { removePool } = await pools();
      removePool(await storage(), request.params.name);
      return { name: request.params.name, deleted: true };
    },
  );

  app.get<{ Querystring: { pool?: string } }>(
    '/volumes',
    { schema: { tags, summary: 'volumes, with virtual size, allocation and the instance using each (?pool=NAME: only that pool)', querystring: VolumesQuery, response: withErrors({ 200: Type.Array(Volume) }) } },
    async (request) => {
      const { listVolumes } = await volumes();
      return (await listVolumes(await storage(), request.query.pool === undefined ? {} : { pool: request.query.pool })).map((v) => volumeView(v));
    },
  );

  app.get(
    '/instance-disks',
    { schema: { tags, summary: 'the instances\' own disks (made by create/launch in their directories; not volumes): `virtnode volume ls --all`', response: withErrors({ 200: Type.Array(InstanceDisk) }) } },
    async () => {
      const { listInstanceDisks } = await volumes();
      return (await listInstanceDisks(await storage())).map(instanceDiskView);
    },
  );

  app.get<NameRequest>('/volumes/:name', { config: checked, schema: { tags, summary: 'one volume, with its backing chain', params: CheckedNameParams, response: withErrors({ 200: Volume }) } }, async (request) => {
    const { volumeInfo } = await volumes();
    return volumeView(await volumeInfo(await storage(), request.params.name));
  });

  app.post<{ Body: CreateVolumeBodyType }>(
    '/volumes',
    { schema: { tags, summary: 'a new empty disk image in a pool (`virtnode volume create`)', body: CreateVolumeBody, response: withErrors({ 201: Volume }) } },
    async (request, reply) => {
      const { createVolume, volumeInfo } = await volumes();
      const b = request.body;
      const s = await storage();
      const volume = await createVolume(s, {
        name: b.name,
        size: b.size,
        ...(b.format === undefined ? {} : { format: b.format }),
        preallocate: b.preallocate === true,
        ...(b.pool === undefined ? {} : { pool: b.pool }),
      });
      return reply.status(201).send(volumeView(await volumeInfo(s, volume.name)));
    },
  );

  app.post<NameRequest & { Body: { size: string; allowShrink?: boolean } }>(
    '/volumes/:name/resize',
    {
      config: checked,
      schema: {
        tags,
        summary: 'change a volume\'s virtual size (live through QMP when its instance runs); a smaller size needs allowShrink',
        params: CheckedNameParams,
        body: ResizeVolumeBody,
        response: withErrors({ 200: VolumeResize }),
      },
    },
    async (request) => {
      const { resizeVolume } = await volumes();
      const r = await resizeVolume(await storage(), request.params.name, request.body.size, { allowShrink: request.body.allowShrink === true });
      core.supervisor.poke();
      return { volume: r.volume.name, from: r.from, to: r.to, live: r.live };
    },
  );

  app.post<NameRequest & { Body: { format: string } }>(
    '/volumes/:name/convert',
    {
      config: checked,
      schema: {
        tags,
        summary: 'rewrite a volume in another format, not while attached (an operation; result: the volume)',
        params: CheckedNameParams,
        body: ConvertVolumeBody,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { checkConvert, convertVolume, volumeInfo } = await volumes();
      const s = await storage();
      const { name } = request.params;
      checkConvert(s, name, request.body.format);
      const op = core.operations.start('volume-convert', `volumes/${name}`, async () => {
        await convertVolume(s, name, request.body.format);
        return volumeView(await volumeInfo(s, name));
      });
      return reply.status(202).send(op);
    },
  );

  app.get<NameRequest>(
    '/volumes/:name/check',
    { config: checked, schema: { tags, summary: 'check a volume for consistency (qemu-img check)', params: CheckedNameParams, response: withErrors({ 200: VolumeCheck }) } },
    async (request) => {
      const { checkVolume } = await volumes();
      return volumeCheckView(await checkVolume(await storage(), request.params.name));
    },
  );

  app.post<{ Body: { file: string; name?: string; pool?: string; format?: string } }>(
    '/volumes/import',
    {
      schema: {
        tags,
        summary: 'copy an image file on the daemon\'s host (absolute path) into a new volume, backing chain flattened (an operation; result: the volume)',
        body: ImportVolumeBody,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { checkImport, importVolume, volumeInfo } = await volumes();
      const s = await storage();
      const b = request.body;
      const options = { ...(b.name === undefined ? {} : { name: b.name }), ...(b.pool === undefined ? {} : { pool: b.pool }), ...(b.format === undefined ? {} : { format: b.format }) };
      const { name } = checkImport(s, absoluteFile(b.file), options);
      const op = core.operations.start('volume-import', `volumes/${name}`, async () => {
        const v = await importVolume(s, b.file, options);
        return volumeView(await volumeInfo(s, v.name));
      });
      return reply.status(202).send(op);
    },
  );

  app.post<NameRequest & { Body: { file: string; format?: string } }>(
    '/volumes/:name/export',
    {
      config: checked,
      schema: {
        tags,
        summary: 'copy a volume out to a new file on the daemon\'s host (absolute path; never overwrites) (an operation; result: {path, format})',
        params: CheckedNameParams,
        body: ExportVolumeBody,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { checkExport, exportVolume } = await volumes();
      const s = await storage();
      const { name } = request.params;
      const options = request.body.format === undefined ? {} : { format: request.body.format };
      checkExport(s, name, absoluteFile(request.body.file), options);
      const op = core.operations.start('volume-export', `volumes/${name}`, async () => exportVolume(s, name, request.body.file, options));
      return reply.status(202).send(op);
    },
  );

  app.delete<NameRequest>(
    '/volumes/:name',
    {
      config: checked,
      schema: {
        tags,
        summary: 'delete a volume and its file (refused while attached)',
        params: CheckedNameParams,
        response: withErrors({ 200: Type.Object({ name: Type.String(), deleted: Type.Boolean() }, { additionalProperties: false }) }),
      },
    },
    async (request) => {
      const { removeVolume } = await volumes();
      const { name } = request.params;
      await removeVolume(await storage(), name);
      return { name, deleted: true };
    },
  );
}
