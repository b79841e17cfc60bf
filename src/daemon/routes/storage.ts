import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { CreateVolumeBody, type CreateVolumeBodyType, NameParams, Pool, Volume, VolumesQuery, withErrors } from '../../api/schemas.ts';
import { poolView, volumeView } from '../../api/views.ts';
import { validateName } from '../../lib/ids.ts';
import type { StorageService } from '../../storage/service.ts';
import type { DaemonCore } from '../core.ts';
import { lazyStorageService } from './storage-service.ts';

type NameRequest = { Params: { name: string } };

/** Pools and volumes (`virtnode pool ...`, `virtnode volume ...`). */
export async function storageRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const tags = ['storage'];
  const storage = lazyStorageService(core);

  app.get('/pools', { schema: { tags, summary: 'pools with the size, use and free space of the filesystem holding each', response: withErrors({ 200: Type.Array(Pool) }) } }, async () => {
    const { listPools } = await import('../../storage/pools.ts');
    return listPools(await storage()).map((p) => poolView(p));
  });

  app.get<NameRequest>('/pools/:name', { schema: { tags, summary: 'one pool, with its volumes', params: NameParams, response: withErrors({ 200: Pool }) } }, async (request) => {
    const { poolInfo } = await import('../../storage/pools.ts');
    return poolView(poolInfo(await storage(), validateName('name', request.params.name)));
  });

  app.get<{ Querystring: { pool?: string } }>(
    '/volumes',
    { schema: { tags, summary: 'volumes, with virtual size, allocation and the instance using each (?pool=NAME: only that pool)', querystring: VolumesQuery, response: withErrors({ 200: Type.Array(Volume) }) } },
    async (request) => {
      const { listVolumes } = await import('../../storage/volumes.ts');
      return (await listVolumes(await storage(), request.query.pool === undefined ? {} : { pool: validateName('pool', request.query.pool) })).map((v) => volumeView(v));
    },
  );

  app.get<NameRequest>('/volumes/:name', { schema: { tags, summary: 'one volume, with its backing chain', params: NameParams, response: withErrors({ 200: Volume }) } }, async (request) => {
    const { volumeInfo } = await import('../../storage/volumes.ts');
    return volumeView(await volumeInfo(await storage(), validateName('name', request.params.name)));
  });

  app.post<{ Body: CreateVolumeBodyType }>(
    '/volumes',
    { schema: { tags, summary: 'a new empty disk image in a pool (`virtnode volume create`)', body: CreateVolumeBody, response: withErrors({ 201: Volume }) } },
    async (request, reply) => {
      const { createVolume, volumeInfo } = await import('../../storage/volumes.ts');
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

  app.delete<NameRequest>(
    '/volumes/:name',
    {
      schema: {
        tags,
        summary: 'delete a volume and its file (refused while attached)',
        params: NameParams,
        response: withErrors({ 200: Type.Object({ name: Type.String(), deleted: Type.Boolean() }, { additionalProperties: false }) }),
      },
    },
    async (request) => {
      const { removeVolume } = await import('../../storage/volumes.ts');
      const name = validateName('name', request.params.name);
      await removeVolume(await storage(), name);
      return { name, deleted: true };
    },
  );
}
