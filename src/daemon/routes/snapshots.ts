import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { CheckedNameParams, CreateSnapshotBody, type CreateSnapshotBodyType, Operation, Snapshot, SnapshotParams, withErrors } from '../../api/schemas.ts';
import { snapshotList, snapshotView } from '../../api/views.ts';
import type { SnapshotResult } from '../../storage/snapshots.ts';
import type { DaemonCore } from '../core.ts';
import { lazyStorageService } from './storage-service.ts';

type SnapRequest = { Params: { name: string; snap: string } };

/** Routes whose core function checks the names itself (as the CLI does, naming the field: volume, instance). */
const checked = { nameCheckedByCore: true };

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
  app.get<{ Params: { name: string } }>(
    '/instances/:name/snapshots',
    { config: checked, schema: { tags, summary: 'an instance\'s snapshots, oldest first; each names the snapshot it was taken from (parent)', params: CheckedNameParams, response: withErrors({ 200: Type.Array(Snapshot) }) } },
    async (request) => {
      const { listSnapshots } = await snapshots();
      return snapshotList(await listSnapshots(await storage(), request.params.name));
    },
  );

  app.post<{ Params: { name: string }; Body: CreateSnapshotBodyType | undefined }>(
    '/instances/:name/snapshots',
    {
      config: checked,
      schema: {
        tags,
        summary: 'snapshot an instance: running → with memory (internal) or diskOnly (external); stopped → disks, internal or external (an operation; result: {snapshot, notes})',
        params: CheckedNameParams,
        body: Type.Union([CreateSnapshotBody, Type.Null()]),
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { checkSnapshotCreate, createSnapshot } = await snapshots();
      const s = await storage();
      const b = request.body ?? {};
      const snapshotRequest = {
        instance: request.params.name,
        ...(b.name === undefined ? {} : { name: b.name }),
        diskOnly: b.diskOnly === true,
        external: b.external === true,
        quiesce: b.quiesce === true,
      };
      // Bad input, a missing instance, a taken name, a wrong state: answered now (4xx), not as a failed operation.
      await checkSnapshotCreate(s, snapshotRequest);
      const op = core.operations.start('snapshot-create', `instances/${request.params.name}`, async () => result(await createSnapshot(s, snapshotRequest)));
      return reply.status(202).send(done(op));
    },
  );

  app.post<SnapRequest>(
    '/instances/:name/snapshots/:snap/revert',
    {
      config: checked,
      schema: {
        tags,
        summary: 'return to a snapshot, discarding everything since (may restart a running instance; the notes say so) (an operation)',
        params: SnapshotParams,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { checkSnapshotExists, revertSnapshot } = await snapshots();
      const s = await storage();
      const { name, snap } = request.params;
      await checkSnapshotExists(s, name, snap);
      const op = core.operations.start('snapshot-revert', `instances/${name}`, async () => result(await revertSnapshot(s, name, snap)));
      return reply.status(202).send(done(op));
    },
  );

  app.delete<SnapRequest>(
    '/instances/:name/snapshots/:snap',
    {
      config: checked,
      schema: {
        tags,
        summary: 'delete a snapshot (an external one is merged into the file above it) (an operation)',
        params: SnapshotParams,
        response: withErrors({ 202: Operation }),
      },
    },
    async (request, reply) => {
      const { checkSnapshotExists, deleteSnapshot } = await snapshots();
      const s = await storage();
      const { name, snap } = request.params;
      await checkSnapshotExists(s, name, snap);
      const op = core.operations.start('snapshot-delete', `instances/${name}`, async () => result(await deleteSnapshot(s, name, snap)));
      return reply.status(202).send(done(op));
    },
  );
}
