import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import {
  AddPortBody,
  AttachDiskBody,
  CheckedNameParams,
  DiskChange,
  DiskParams,
  NameParams,
  PortForward,
  PortParams,
  withErrors,
} from '../../api/schemas.ts';
import { portForwardView, portForwardViews } from '../../api/views.ts';
import { validateName } from '../../lib/ids.ts';
import type { StorageService } from '../../storage/service.ts';
import type { DaemonCore } from '../core.ts';
import { lazyStorageService } from './storage-service.ts';

type NameRequest = { Params: { name: string } };

/** Routes whose core function checks the names itself (as the CLI does, naming the field: volume, instance). */
const checked = { nameCheckedByCore: true };

/**
 * An instance's port forwards and disks (`virtnode port ...`, `disk attach|detach`): live through
 * QMP when it runs, recorded for the next start when it is stopped; each takes the instance lock.
 */
export async function deviceRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const storage = lazyStorageService(core);
  const done = <T>(value: T): T => {
    core.supervisor.poke();
    return value;
  };

  app.get<NameRequest>(
    '/instances/:name/ports',
    { schema: { tags: ['ports'], summary: "an instance's user-mode port forwards, with the SSH forward virtnode made (owner: ssh)", params: NameParams, response: withErrors({ 200: Type.Array(PortForward) }) } },
    async (request) => {
      const instance = await core.instances.get(validateName('name', request.params.name));
      return portForwardViews(instance);
    },
  );

  app.post<NameRequest & { Body: { ports: string; address?: string } }>(
    '/instances/:name/ports',
    {
      schema: {
        tags: ['ports'],
        summary: 'forward a host port to a guest port on the user-mode NIC (`ports`: HOST:GUEST[/tcp|udp]; bound to 127.0.0.1 unless `address`)',
        params: NameParams,
        body: AddPortBody,
        response: withErrors({ 201: PortForward }),
      },
    },
    async (request, reply) => {
      const { addPortForward } = await import('../../instances/port-forward.ts');
      const name = validateName('name', request.params.name);
      const forward = await addPortForward(core.instances, name, request.body.ports, request.body.address ?? '127.0.0.1');
      return reply.status(201).send(done(portForwardView(forward)));
    },
  );

  app.delete<{ Params: { name: string; port: string } }>(
    '/instances/:name/ports/:port',
    { schema: { tags: ['ports'], summary: 'stop forwarding a host port (`port`: HOST[/tcp|udp]; URL-encode the slash)', params: PortParams, response: withErrors({ 200: PortForward }) } },
    async (request) => {
      const { removePortForward } = await import('../../instances/port-forward.ts');
      const name = validateName('name', request.params.name);
      return done(portForwardView(await removePortForward(core.instances, name, request.params.port)));
    },
  );

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
