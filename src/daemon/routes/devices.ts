import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { AttachDiskBody, CheckedNameParams, DiskChange, DiskParams, withErrors } from '../../api/schemas.ts';
import type { StorageService } from '../../storage/service.ts';
import type { DaemonCore } from '../core.ts';
import { lazyStorageService } from './storage-service.ts';

type NameRequest = { Params: { name: string } };

/** Routes whose core function checks the names itself (as the CLI does, naming the field: volume, instance). */
const checked = { nameCheckedByCore: true };

/**
 * An instance's disks (`virtnode disk attach|detach`): live through QMP when it runs, recorded for the next start
 * when it is stopped; each takes the instance lock.
 */
export async function deviceRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const storage = lazyStorageService(core);
  const done = <T>(value: T): T => {
    core.supervisor.poke();
    return value;
  };

  app.post<NameRequest & { Body: { volume: string } }>(
    '/instances/:name/disks',
    {
      config: checked,
      schema: {
        tags: ['storage'],
        summary: 'attach a volume as a virtio disk (hot-plugged if the instance runs; kept for the next start)',
        params: CheckedNameParams,
        body: AttachDiskBody,
        response: withErrors({ 201: DiskChange }),
      },
    },
    async (request, reply) => {
      const { attachDisk } = await import('../../storage/disks.ts');
      return reply.status(201).send(done(await attachDisk(await storage(), request.params.name, request.body.volume)));
    },
  );

  app.delete<{ Params: { name: string; volume: string } }>(
    '/instances/:name/disks/:volume',
    { config: checked, schema: { tags: ['storage'], summary: 'detach a volume (live: waits until the guest has released it)', params: DiskParams, response: withErrors({ 200: DiskChange }) } },
    async (request) => {
      const { detachDisk } = await import('../../storage/disks.ts');
      return done(await detachDisk(await storage(), request.params.name, request.params.volume));
    },
  );
}
