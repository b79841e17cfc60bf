/**
 * A stand-in for `virtnode daemon` while the API branch has not landed: the routes the web UI uses, over the
 * real instance service, with bearer-token auth, events from polling, and the real web UI plugin. Run as its
 * own process: `node stand-in-daemon.ts PORT TOKEN` (VIRTNODE_HOME set); prints `listening URL` when ready.
 */
import { EventEmitter } from 'node:events';
import { InstanceService } from '../../../src/instances/service.ts';
import type { Instance } from '../../../src/instances/model.ts';
import type { CreateRequest } from '../../../src/instances/validate.ts';
import { statePaths } from '../../../src/lib/paths.ts';
import { openDb } from '../../../src/store/db.ts';
import { consoleTestApp } from '../../helpers/web-app.ts';

const [port, token] = process.argv.slice(2);
const paths = statePaths();
const service = new InstanceService(paths, openDb(paths.db));
const bus = new EventEmitter();
const events = {
  subscribe(listener: (event: unknown) => void) {
    bus.on('event', listener);
    return () => bus.off('event', listener);
  },
};
const app = await consoleTestApp({ instances: service, events });
app.addHook('onRequest', async (request, reply) => {
  if (request.routeOptions.config.public === true) return;
  if (request.headers.authorization !== `Bearer ${token}`) {
    return reply.code(401).send({ error: { code: 'UNAUTHORIZED', message: 'this API needs a bearer token' } });
  }
});
type P = { Params: { name: string } };
/** The API's instance view (src/api/views.ts on the API branch), as far as the UI reads it. */
const view = (i: Instance) => ({
  name: i.name,
  state: i.state,
  ...(i.stateReason === undefined ? {} : { reason: i.stateReason }),
  uuid: i.uuid,
  smbiosUuid: i.smbiosUuid,
  cpus: i.spec.cpus,
  memoryMiB: i.spec.memoryMiB,
  accel: i.spec.accel,
  disks: i.spec.disks.map((d) => ({ id: d.id, path: d.path, format: d.format })),
  nics: i.nics.map((n) => ({ index: n.index, mac: n.mac, network: n.network })),
  ...(i.spec.boot === undefined ? {} : { boot: i.spec.boot }),
  ...(i.pid === undefined ? {} : { pid: i.pid }),
  createdAt: i.createdAt,
  updatedAt: i.updatedAt,
});
app.get('/instances', async () => (await service.list()).map(view));
app.get<P>('/instances/:name', async (r) => view(await service.get(r.params.name)));
app.get('/images', async () => []);
app.post<{ Body: CreateRequest & { start?: boolean } }>('/instances', async (r, reply) => {
  const { start, ...fields } = r.body;
  let instance = await service.create(fields);
  if (start === true) instance = await service.start(instance.name);
  return reply.code(201).send(view(instance));
});
for (const action of ['start', 'stop', 'restart', 'pause', 'resume'] as const) {
  app.post<P & { Body: { force?: boolean } | null }>(`/instances/:name/${action}`, async (r) => {
    if (action === 'stop') return view((await service.stop(r.params.name, { force: r.body?.force === true, timeoutMs: 20_000 })).instance);
    if (action === 'restart') return view(await service.restart(r.params.name));
    return view(await service[action](r.params.name));
  });
}
app.delete<P & { Querystring: { force?: string } }>('/instances/:name', async (r) => {
  await service.delete(r.params.name, { force: r.query.force === 'true' });
  return { name: r.params.name, deleted: true };
});

// Events: the daemon's supervisor watches QMP; here, a poll of the states is enough.
let known = new Map<string, string>();
setInterval(() => {
  void service.list().then((list) => {
    const now = new Map(list.map((i) => [i.name, i.state as string]));
    for (const [name, state] of now) {
      if (known.get(name) !== state) bus.emit('event', { type: 'instance', name, state, previous: known.get(name), at: new Date().toISOString() });
    }
    for (const name of known.keys()) if (!now.has(name)) bus.emit('event', { type: 'instance', name, state: 'deleted', at: new Date().toISOString() });
    known = now;
  });
}, 200);

const address = await app.listen({ host: '127.0.0.1', port: Number(port) });
console.log(`listening ${address}`);
