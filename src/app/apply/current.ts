/**
 * What exists now, for the planner: from virtnode's record (after reconcile, states observed), and for `diff`
 * from the running processes themselves (vCPUs, memory, disks and NICs asked over QMP), with each difference
 * between the two reported as drift.
 */
import { accessSync, constants, statSync } from 'node:fs';
import type { Instance } from '../../instances/model.ts';
import { listLinks } from '../../network/links.ts';
import { hostRoutes } from '../../network/routes.ts';
import { StackObjectRepository } from '../../store/stack-objects.ts';
import type { AppCore } from '../context.ts';
import type { CurrentInstance, CurrentState, Owner } from './model.ts';
import { ownerKey } from './model.ts';
import type { StackContext } from './validate.ts';

export interface Drift {
  kind: string;
  name: string;
  field: string;
  recorded: string;
  live: string;
}

const isRunning = (i: Instance) => i.state === 'running' || i.state === 'paused';

function fromRecord(i: Instance): CurrentInstance {
  return {
    name: i.name,
    state: i.state,
    cpus: i.spec.cpus,
    memoryMiB: i.spec.memoryMiB,
    accel: i.spec.accel,
    ...(i.spec.image === undefined ? {} : { image: i.spec.image.name }),
    ...(i.spec.boot === undefined ? {} : { boot: i.spec.boot }),
    ...(i.spec.tuning === undefined || Object.keys(i.spec.tuning).length === 0 ? {} : { tuning: i.spec.tuning }),
    nics: i.nics.map((n) => ({ index: n.index, mac: n.mac, network: n.network, ...(n.address === undefined ? {} : { address: n.address }), ...(n.staticAddress === undefined ? {} : { staticAddress: n.staticAddress }) })),
    volumes: i.spec.disks.filter((d) => d.volume !== undefined).map((d) => d.volume!),
    ports: [...(i.spec.portForwards ?? [])],
    booted: i.state !== 'defined' && i.state !== 'creating',
  };
}

export function owners(core: AppCore): Map<string, Owner> {
  return new Map(new StackObjectRepository(core.db).all().map((o) => [ownerKey(o.kind, o.name), { stack: o.stack, created: o.created, ...(o.userDataSha256 === undefined ? {} : { userDataSha256: o.userDataSha256 }) }]));
}

/**
 * The current state. `live`: running instances as their processes have them (drift listed); otherwise as
 * recorded, with only the memory they booted with asked of them (it decides whether a memory change is live).
 */
export async function currentState(core: AppCore, options: { live?: boolean } = {}): Promise<{ state: CurrentState; drift: Drift[] }> {
  await core.instances.ensureReconciled();
  const storage = await core.storage();
  const [{ listPools }, { listVolumes }] = await Promise.all([import('../../storage/pools.ts'), import('../../storage/volumes.ts')]);
  const drift: Drift[] = [];
  const instances = new Map<string, CurrentInstance>();
  for (const i of await core.instances.list()) {
    const cur = fromRecord(i);
    const driver = core.instances.driver(i);
    if (isRunning(i) && driver.inspect !== undefined) {
      const live = await driver.inspect(i).catch(() => undefined);
      if (live !== undefined) {
        cur.bootMemoryMiB = live.bootMemoryMiB;
        if (options.live === true) {
          const add = (field: string, recorded: unknown, now: unknown) => drift.push({ kind: 'instance', name: i.name, field, recorded: String(recorded), live: String(now) });
          if (live.cpus !== cur.cpus) add('cpus', cur.cpus, live.cpus);
          if (live.memoryMiB !== cur.memoryMiB) add('memory', `${cur.memoryMiB}M`, `${live.memoryMiB}M`);
          for (const d of i.spec.disks) {
            if (!live.disks.includes(d.id)) add(`disks.${d.id}`, d.volume === undefined ? d.path : `volume ${d.volume}`, 'absent (detached behind virtnode\'s back)');
          }
          for (const id of live.disks.filter((x) => !i.spec.disks.some((d) => d.id === x))) add(`disks.${id}`, 'absent', 'attached (not by virtnode)');
          for (const n of i.nics) if (!live.nicMacs.includes(n.mac)) add(`nics[${n.index}]`, `${n.network} ${n.mac}`, 'absent');
          for (const mac of live.nicMacs.filter((m) => !i.nics.some((n) => n.mac === m))) add('nics', 'absent', mac);
          cur.cpus = live.cpus;
          cur.memoryMiB = live.memoryMiB;
          const liveIds = new Set(live.disks);
          cur.volumes = i.spec.disks.filter((d) => d.volume !== undefined && liveIds.has(d.id)).map((d) => d.volume!);
          cur.nics = cur.nics.filter((n) => live.nicMacs.includes(n.mac));
        }
      }
    }
    instances.set(i.name, cur);
  }
  const state: CurrentState = {
    images: new Map(core.images.list().map((i) => [i.name, { sha256: i.sha256 }])),
    templates: new Set(core.core.repos.templates.list().map((t) => t.name)),
    networks: new Map(core.instances.networks.list().map((n) => [n.name, n])),
    pools: new Map((await listPools(storage)).map((p) => [p.name, { name: p.name, path: p.path }])),
    volumes: new Map(
      (await listVolumes(storage)).map((v) => [
        v.name,
        { name: v.name, pool: v.pool, format: v.format, ...(v.virtualSize === undefined ? {} : { virtualSize: v.virtualSize }), ...(v.attachedTo === undefined ? {} : { attachedTo: v.attachedTo }) },
      ]),
    ),
    instances,
    owners: owners(core),
  };
  return { state, drift };
}

/** What validation needs of the host, read once. */
export async function stackContext(core: AppCore, stack: string, state: CurrentState): Promise<StackContext> {
  const [routes, links] = await Promise.all([hostRoutes(), listLinks()]);
  const bridges = new Set(links.filter((l) => l.kind === 'bridge').map((l) => l.ifname));
  const images = new Set(core.images.list().map((i) => i.name));
  return {
    stack,
    limits: core.core.limits,
    networks: [...state.networks.values()],
    routes,
    bridgeExists: (n) => bridges.has(n),
    imageExists: (n) => images.has(n) || core.core.repos.templates.get(n) !== undefined,
    templateExists: (n) => state.templates.has(n),
    instanceExists: (n) => state.instances.has(n),
    fileReadable: (p) => {
      try {
        accessSync(p, constants.R_OK);
        return statSync(p).isFile();
      } catch {
        return false;
      }
    },
    pools: [...state.pools.keys()],
    volumes: [...state.volumes.keys()],
    owners: state.owners,
  };
}
