import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { CreateSnapshotBody, type CreateSnapshotBodyType, NameParams, Operation, Snapshot, SnapshotParams, withErrors } from '../../api/schemas.ts';
import { snapshotView } from '../../api/views.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { validateName } from '../../lib/ids.ts';
import type { SnapshotResult } from '../../storage/snapshots.ts';
import type { StorageService } from '../../storage/service.ts';
import type { DaemonCore } from '../core.ts';
import { lazyStorageService } from './storage-service.ts';

type SnapRequest = { Params: { name: string; snap: string } };

/** Instance snapshots (`virtnode snapshot ...`): create, revert and delete are operations on the instance. */
export async function snapshotRoutes(app: FastifyInstance, core: DaemonCore): Promise<void> {
  const tags = ['snapshots'];
  const storage = lazyStorageService(core);
  const snapshots = () => import('../../storage/snapshots.ts');
  const result = (r: SnapshotResult) => ({ snapshot: snapshotView(r.snapshot), notes: r.notes });
  const done = <T>(value: T): T => {
    core.supervisor.poke();
    return value;
  };
  /** Bad input and a missing instance or snapshot are answered now (4xx), not as a failed operation. */
  const mustGetSnapshot = async (s: StorageService, instance: string, snap: string) => {
    await core.instances.get(validateName('name', instance));
    const found = s.repo.snapshot(instance, validateName('snap', snap));
    if (found === undefined || found.state === 'creating') {
      throw new VirtnodeError('NOT_FOUND', `instance ${instance} has no snapshot ${snap}`, { hint: `see them with: GET /instances/${instance}/snapshots` });
    }
  };

  app.get<{ Params: { name: string } }>(
    '/instances/:name/snapshots',
    { schema: { tags, summary: 'an instance\'s snapshots, oldest first; each names the snapshot it was taken from (parent)', params: NameParams, response: withErrors({ 200: Type.Array(Snapshot) }) } },
    async (request) => {
      const { listSnapshots } = await snapshots();
      const flat: ReturnType<typeof snapshotView>[] = [];
      const walk = (nodes: Awaited<ReturnType<typeof listSnapshots>>) => {
        for (const n of nodes) {
          flat.push(snapshotView(n));
          walk(n.children);
        }
      };
      walk(await listSnapshots(await storage(), validateName('name', request.params.name)));
      return flat.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    },
  );

  app.post<{ Params: { name: string }; Body: CreateSnapshotBodyType | undefined }>(
    '/instances/:name/snapshots',
    {
      schema: {
        tags,
        summary: 'snapshot an instance: running → with memory (internal) or diskOnly (external); stopped → disks, internal or external (an operation; result: {snapshot, notes})',
        params: NameParams,
        body: Type.Union([CreateSnapshotBody, Type.Null()]),
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { createSnapshot } = await snapshots();
      const s = await storage();
      const instance = await core.instances.get(validateName('name', request.params.name));
      const b = request.body ?? {};
      if (b.name !== undefined && s.repo.snapshot(instance.name, b.name) !== undefined) {
        throw new VirtnodeError('CONFLICT', `name: instance ${instance.name} already has a snapshot ${b.name}`, { field: 'name', hint: 'choose another name' });
      }
      const op = core.operations.start('snapshot-create', `instances/${instance.name}`, async () =>
        result(
          await createSnapshot(s, {
            instance: instance.name,
            ...(b.name === undefined ? {} : { name: b.name }),
            diskOnly: b.diskOnly === true,
            external: b.external === true,
            quiesce: b.quiesce === true,
          }),
        ),
      );
      return reply.status(202).send(done(op));
    },
  );

  app.post<SnapRequest>(
    '/instances/:name/snapshots/:snap/revert',
    {
      schema: {
        tags,
        summary: 'return to a snapshot, discarding everything since (may restart a running instance; the notes say so) (an operation)',
        params: SnapshotParams,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { revertSnapshot } = await snapshots();
      const s = await storage();
      const { name, snap } = request.params;
      await mustGetSnapshot(s, name, snap);
      const op = core.operations.start('snapshot-revert', `instances/${name}`, async () => result(await revertSnapshot(s, name, snap)));
      return reply.status(202).send(done(op));
    },
  );

  app.delete<SnapRequest>(
    '/instances/:name/snapshots/:snap',
    {
      schema: {
        tags,
        summary: 'delete a snapshot (an external one is merged into the file above it) (an operation)',
        params: SnapshotParams,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { deleteSnapshot } = await snapshots();
      const s = await storage();
      const { name, snap } = request.params;
      await mustGetSnapshot(s, name, snap);
      const op = core.operations.start('snapshot-delete', `instances/${name}`, async () => result(await deleteSnapshot(s, name, snap)));
      return reply.status(202).send(done(op));
    },
  );
}
