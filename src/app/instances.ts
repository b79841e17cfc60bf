/** The instance contract, implemented once over the core (the daemon's routes and the CLI both call this). */
import { isAbsolute } from 'node:path';
import { instanceEndpoints } from '../api/contracts/instances.ts';
import type { InstanceView } from '../api/schemas.ts';
import { instanceView } from './views.ts';
import { nicAddresses } from '../instances/addresses.ts';
import { checkLaunchOnHost, launchInstance } from '../instances/launch-instance.ts';
import { type LaunchRequest, validateLaunch } from '../instances/launch-validate.ts';
import { changeResources } from '../instances/resources.ts';
import { validateCpus, validateMemory } from '../host/limits.ts';
import type { Instance } from '../instances/model.ts';
import { invalid } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import { parseSize } from '../lib/units.ts';
import { DEFAULT_POLICY } from '../store/policies.ts';
import { launchSource } from '../templates/launch-source.ts';
import type { AppCore } from './context.ts';
import { job } from './operations.ts';
import { checkRequestPath } from './request-paths.ts';
import { imageFetchPlan } from './images-cluster.ts';
import { clustered, ownedHere } from './instances-cluster.ts';
import { type Implementation, resource } from './resource.ts';

/** `launch --pool`: where the pool's files are (a directory or an nfs:// URL); only a VM has a disk to put there. */
async function poolLocation(core: AppCore, pool: string, type: string | undefined): Promise<string> {
  if (type === 'container') throw invalid('--pool', 'a container has no disk image to put in a pool', 'leave out --pool');
  const [{ mustGetPool }, storage] = await Promise.all([import('../storage/pools.ts'), core.storage()]);
  return mustGetPool(storage, validateName('--pool', pool)).path;
}

/** Paths in a request are paths on the host doing the work; relative ones would depend on its directory. */
function absolute(field: string, path: string | undefined): void {
  if (path !== undefined && !isAbsolute(path)) throw invalid(field, `"${path}" is not an absolute path`, 'paths sent to virtnode must be absolute');
}

/** What this host itself does with instances; `instances` below adds the cluster (src/app/instances-cluster.ts). */
export function localInstances(core: AppCore): Implementation<typeof instanceEndpoints> {
  const service = core.instances;
  const view = (i: Instance): InstanceView => instanceView(i, core.policies.get(i.name));
  const stopOptions = (input: { force?: boolean; timeoutSeconds?: number }) => ({
    force: input.force === true,
    ...(input.timeoutSeconds === undefined ? {} : { timeoutMs: input.timeoutSeconds * 1000 }),
  });

  return {
    async list() {
      const policies = core.policies.all();
      const all = await service.list();
      const leaseMemo = new Map<string, ReadonlyArray<{ mac: string; address: string }>>();
      const addresses = await Promise.all(all.map((i) => nicAddresses(service, i, { leaseMemo })));
      return all.map((i, k) => instanceView(i, policies.get(i.name) ?? DEFAULT_POLICY, addresses[k]));
    },

    async get({ name }) {
      const instance = await service.get(name);
      return instanceView(instance, core.policies.get(instance.name), await nicAddresses(service, instance, { agent: true }));
    },

    async create({ start, autostart, restartPolicy, ...fields }, caller) {
      for (const f of ['disk', 'kernel', 'initrd'] as const) {
        if (f === 'disk' && fields.disk?.startsWith('nfs://')) continue; // QEMU's to open, on the NFS server (checked by the core)
        absolute(f, fields[f]);
        if (fields[f] !== undefined) checkRequestPath(core.remotePaths, caller, f, fields[f], 'file');
      }
      let instance = await service.create(fields);
      if (autostart !== undefined || restartPolicy !== undefined) {
        core.policies.set(instance.name, { autostart: autostart ?? false, restart: restartPolicy ?? 'no' });
      }
      if (start === true) instance = await service.start(instance.name);
      return core.changed(view(instance));
    },

    async launch(input) {
      const request: LaunchRequest = {
        image: input.image,
        ...(input.type === undefined ? {} : { type: input.type }),
        ...(input.privileged === undefined ? {} : { privileged: input.privileged }),
        ...(input.name === undefined ? {} : { name: input.name }),
        ...(input.cpus === undefined ? {} : { cpus: String(input.cpus) }),
        ...(input.memory === undefined ? {} : { memory: input.memory }),
        ...(input.diskSize === undefined ? {} : { diskSize: input.diskSize }),
        ...(input.pool === undefined ? {} : { diskLocation: await poolLocation(core, input.pool, input.type) }),
        ...(input.sshAuthorizedKeys === undefined ? {} : { sshAuthorizedKeys: input.sshAuthorizedKeys }),
        ...(input.userData === undefined ? {} : { userDataText: input.userData }),
        ...(input.networkConfig === undefined ? {} : { networkConfigText: input.networkConfig }),
        ...(input.timezone === undefined ? {} : { timezone: input.timezone }),
        ...(input.passwordHash === undefined ? {} : { passwordHash: input.passwordHash }),
        ...(input.user === undefined ? {} : { user: input.user }),
        ...(input.accel === undefined ? {} : { accel: input.accel }),
        ...(input.seed === undefined ? {} : { seed: input.seed }),
        ...(input.networks === undefined ? {} : { networks: input.networks }),
        ...(input.ips === undefined ? {} : { ips: input.ips }),
        ...(input.tuning === undefined ? {} : { tuning: input.tuning }),
        ...(input.warm === undefined ? {} : { warm: input.warm }),
      };
      // Bad input is refused now, not as a failed operation; the name is fixed here so the caller knows it.
      const valid = validateLaunch(request);
      checkLaunchOnHost(service, valid);
      const resolveImage = launchSource(core.core);
      // With its sha256, an image this host lacks may come from another host of the cluster (first in the job).
      const fetch = input.imageSha256 === undefined ? undefined : await imageFetchPlan(core, valid.image, input.imageSha256);
      if (fetch === undefined) await resolveImage(valid.image);
      if (valid.tuning !== undefined) await service.checkTuning(valid.tuning, { memoryMiB: valid.memoryMiB, accel: valid.accel, nics: valid.nics });
      return job('launch', `instances/${valid.name}`, async (ctx) => {
        await fetch?.run(ctx);
        const result = await launchInstance(service, resolveImage, { ...request, name: valid.name }, {
          noWait: input.wait === false,
          ...(input.timeoutSeconds === undefined ? {} : { timeoutMs: input.timeoutSeconds * 1000 }),
          signal: ctx.signal,
          onPhase: (phase, detail) => {
            ctx.phase(phase, detail);
            core.changed();
          },
        });
        return {
          instance: view(result.instance),
          address: result.address ?? null,
          cloudInit: result.cloudInit ?? null,
          warnings: result.valid.userDataWarnings.map((w) => `${w.path}: ${w.message}`),
          ssh: { identityFile: result.instance.spec.ssh?.identityFile ?? null, knownHosts: service.paths.knownHosts },
        };
      });
    },

    async start({ name }) {
      return core.changed(view(await service.start(name)));
    },

    async stop(input) {
      const instance = await service.get(input.name); // a missing instance is refused now, not as a failed operation
      return job('stop', `instances/${instance.name}`, async (ctx) => {
        const result = await service.stop(input.name, { ...stopOptions(input), signal: ctx.signal });
        return { instance: view(result.instance), method: result.method };
      });
    },

    async restart(input) {
      const instance = await service.get(input.name);
      return job('restart', `instances/${instance.name}`, async (ctx) => ({ instance: view(await service.restart(input.name, { ...stopOptions(input), signal: ctx.signal })) }));
    },

    // In a cluster, ownedHere (instances-cluster.ts) does the move; a standalone host has nowhere to move to.
    async move({ host }) {
      throw invalid('host', `this host is not in a cluster: there is no host ${host} to move to`, 'form a cluster (`virtnode cluster init`) and join the other host to it');
    },

    async pause({ name }) {
      return core.changed(view(await service.pause(name)));
    },

    async resume({ name }) {
      return core.changed(view(await service.resume(name)));
    },

    async resources({ name, cpus, memory, disk }) {
      // Checked like create's flags, before anything changes.
      const change = {
        ...(cpus === undefined ? {} : { cpus: validateCpus(cpus, core.core.limits) }),
        ...(memory === undefined ? {} : { memoryMiB: validateMemory(memory, core.core.limits) }),
        ...(disk === undefined ? {} : { diskSizeBytes: parseSize('disk', disk) }),
      };
      const before = await service.get(name);
      const { liveMemory } = await changeResources(service, name, change);
      const effect = {
        ...(change.cpus === undefined || change.cpus === before.spec.cpus ? {} : { cpus: 'next-boot' as const }),
        ...(change.memoryMiB === undefined || change.memoryMiB === before.spec.memoryMiB ? {} : { memory: liveMemory ? ('live' as const) : ('next-boot' as const) }),
        ...(change.diskSizeBytes === undefined || change.diskSizeBytes === before.spec.container?.diskSizeBytes ? {} : { disk: 'now' as const }),
      };
      return core.changed({ instance: view(await service.get(name)), effect });
    },

    async setPolicy({ name, autostart, restartPolicy }) {
      const instance = await service.get(name);
      const current = core.policies.get(instance.name);
      core.policies.set(instance.name, { autostart: autostart ?? current.autostart, restart: restartPolicy ?? current.restart });
      return core.changed(view(instance));
    },

    async delete({ name, force }) {
      validateName('name', name);
      await service.delete(name, { force: force === true });
      return core.changed({ name, deleted: true });
    },
  };
}

export const instances = resource('instances', instanceEndpoints, (core: AppCore) => clustered(core, ownedHere(core, localInstances(core))));
