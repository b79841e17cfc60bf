/**
 * Runs a plan's steps, object after object, through the application's own contracts (the same calls `virtnode
 * create`, `nic attach`, `disk attach`... make). What an object's creation made is recorded as owned by the
 * stack at once, so a failure later leaves it recorded and the next apply continues from there; after a failure
 * the remaining objects are left untouched.
 */
import { VirtnodeError, toVirtnodeError } from '../../lib/errors.ts';
import { StackObjectRepository } from '../../store/stack-objects.ts';
import type { AppCore } from '../context.ts';
import { images } from '../images.ts';
import { instances } from '../instances.ts';
import { templates } from '../templates.ts';
import { networks } from '../networks.ts';
import { nics } from '../nics.ts';
import { type OperationContext, runInline } from '../operations.ts';
import { ports } from '../ports.ts';
import { diskResource, poolResource, volumeResource } from '../storage.ts';
import type { DesiredInstance } from './model.ts';
import type { PlannedObject, Step } from './planner.ts';

export interface ExecuteOptions {
  stack: string;
  ctx?: OperationContext;
}

export async function executePlan(core: AppCore, objects: PlannedObject[], options: ExecuteOptions): Promise<PlannedObject[]> {
  const api = {
    instances: instances.implement(core),
    networks: networks.implement(core),
    nics: nics.implement(core),
    ports: ports.implement(core),
    pools: poolResource.implement(core),
    volumes: volumeResource.implement(core),
    disks: diskResource.implement(core),
    images: images.implement(core),
    templates: templates.implement(core),
  };
  const owners = new StackObjectRepository(core.db);
  const stopOptions = { timeoutSeconds: 60 };
  const inline = options.ctx === undefined ? {} : { signal: options.ctx.signal };
  const state = async (name: string) => (await api.instances.get({ name })).state;

  const create = async (d: DesiredInstance) => {
    const managed = d.nics.filter((n) => n.network !== 'user');
    if (d.image !== undefined) {
      const launched = await api.instances.launch({
        image: d.image,
        name: d.name,
        cpus: d.cpus,
        memory: `${d.memoryMiB}M`,
        accel: d.accel,
        networks: d.nics.slice(1).map((n) => n.network),
        ips: d.nics.slice(1).map((n) => n.ip ?? 'auto'),
        wait: false,
        ...(d.tuning === undefined ? {} : { tuning: d.tuning }),
        ...(d.diskSize === undefined ? {} : { diskSize: d.diskSize }),
        ...(d.userData === undefined ? {} : { userData: d.userData }),
        ...(d.sshAuthorizedKeys === undefined ? {} : { sshAuthorizedKeys: d.sshAuthorizedKeys }),
      });
      await runInline(launched, inline);
      owners.set({ kind: 'instance', name: d.name, stack: options.stack, created: true, ...(d.userDataSha256 === undefined ? {} : { userDataSha256: d.userDataSha256 }) });
      if (d.state === 'stopped') await runInline(await api.instances.stop({ name: d.name, ...stopOptions }), inline);
      return;
    }
    await api.instances.create({
      name: d.name,
      cpus: d.cpus,
      memory: `${d.memoryMiB}M`,
      accel: d.accel,
      network: d.nics.length === 0 ? ['none'] : d.nics.map((n) => n.network),
      ...(managed.some((n) => n.ip !== undefined) ? { ip: managed.map((n) => n.ip ?? 'auto') } : {}),
      ...(d.boot === undefined ? {} : { kernel: d.boot.kernel }),
      ...(d.boot?.initrd === undefined ? {} : { initrd: d.boot.initrd }),
      ...(d.boot?.cmdline === undefined ? {} : { cmdline: d.boot.cmdline }),
      ...(d.diskSize === undefined ? {} : { diskSize: d.diskSize }),
      ...(d.tuning === undefined ? {} : { tuning: d.tuning }),
    });
    owners.set({ kind: 'instance', name: d.name, stack: options.stack, created: true });
  };

  const run = async (step: Step): Promise<void> => {
    switch (step.op) {
      case 'image.create': {
        const d = step.desired;
        const op = 'url' in d.source ? await api.images.pull({ name: d.name, ...d.source }) : await api.images.import({ name: d.name, file: d.source.file });
        await runInline(op, inline);
        owners.set({ kind: 'image', name: d.name, stack: options.stack, created: true });
        return;
      }
      case 'image.delete':
        await api.images.remove({ name: step.name });
        return;
      case 'template.create':
        await runInline(await api.templates.create({ instance: step.desired.instance, name: step.desired.name }), inline);
        owners.set({ kind: 'template', name: step.desired.name, stack: options.stack, created: true });
        return;
      case 'template.delete':
        await api.templates.delete({ name: step.name });
        return;
      case 'network.create':
        await api.networks.create(step.desired.request);
        owners.set({ kind: 'network', name: step.desired.name, stack: options.stack, created: true });
        return;
      case 'network.delete':
        await api.networks.delete({ name: step.name });
        return;
      case 'pool.create':
        await api.pools.create({ name: step.desired.name, path: step.desired.path });
        owners.set({ kind: 'pool', name: step.desired.name, stack: options.stack, created: true });
        return;
      case 'pool.delete':
        await api.pools.delete({ name: step.name });
        return;
      case 'volume.create': {
        const d = step.desired;
        await api.volumes.create({ name: d.name, size: d.size, format: d.format, pool: d.pool, ...(d.preallocate ? { preallocate: true } : {}) });
        owners.set({ kind: 'volume', name: d.name, stack: options.stack, created: true });
        return;
      }
      case 'volume.resize':
        await api.volumes.resize({ name: step.name, size: step.size, allowShrink: step.allowShrink });
        return;
      case 'volume.delete':
        await api.volumes.delete({ name: step.name });
        return;
      case 'instance.create':
        await create(step.desired);
        return;
      case 'instance.resources': {
        const { changeResources } = await import('../../instances/resources.ts');
        await changeResources(core.instances, step.name, step.change);
        core.changed();
        return;
      }
      case 'nic.attach':
        await api.nics.attach({ name: step.name, network: step.network, ...(step.ip === undefined ? {} : { ip: step.ip }) });
        return;
      case 'nic.detach':
        await api.nics.detach({ name: step.name, nic: step.mac });
        return;
      case 'disk.attach':
        await api.disks.attach({ name: step.name, volume: step.volume });
        return;
      case 'disk.detach':
        await api.disks.detach({ name: step.name, volume: step.volume });
        return;
      case 'port.add':
        await api.ports.add({ name: step.name, ports: step.ports, address: step.address });
        return;
      case 'port.remove':
        await api.ports.remove({ name: step.name, port: step.port });
        return;
      case 'instance.start':
        if ((await state(step.name)) !== 'running') await api.instances.start({ name: step.name });
        return;
      case 'instance.resume':
        await api.instances.resume({ name: step.name });
        return;
      case 'instance.stop':
        await runInline(await api.instances.stop({ name: step.name, ...stopOptions }), inline);
        return;
      case 'instance.delete': {
        // Gracefully: the guest shuts down first (forced only after the timeout), then the instance goes.
        if (['running', 'paused'].includes(await state(step.name))) await runInline(await api.instances.stop({ name: step.name, ...stopOptions }), inline);
        await api.instances.delete({ name: step.name });
        return;
      }
      case 'own':
        owners.set({ kind: step.kind, name: step.name, stack: options.stack, created: step.created, ...(step.userDataSha256 === undefined ? {} : { userDataSha256: step.userDataSha256 }) });
        return;
      case 'disown':
        owners.delete(step.kind, step.name);
        return;
    }
  };

  const done: PlannedObject[] = [];
  let failed: { object: PlannedObject; error: VirtnodeError } | undefined;
  for (const object of objects) {
    if (failed !== undefined) {
      done.push({ ...object, outcome: object.steps.length === 0 ? 'done' : 'skipped' });
      continue;
    }
    try {
      for (const step of object.steps) {
        if (step.op !== 'own' && step.op !== 'disown') options.ctx?.phase(`${object.kind} ${object.name}`, step.op);
        await run(step);
      }
      done.push({ ...object, outcome: 'done' });
    } catch (e) {
      const error = toVirtnodeError(e);
      failed = { object, error };
      done.push({ ...object, outcome: 'failed', error: error.message });
    }
  }
  core.changed();
  if (failed !== undefined) {
    const finished = done.filter((o) => o.outcome === 'done' && o.action !== 'none').map((o) => `${o.kind} ${o.name}`);
    const skipped = done.filter((o) => o.outcome === 'skipped').map((o) => `${o.kind} ${o.name}`);
    throw new VirtnodeError(failed.error.code, `apply stopped at ${failed.object.kind} ${failed.object.name}: ${failed.error.message}`, {
      cause: failed.error,
      hint: [
        finished.length > 0 ? `done and recorded: ${finished.join(', ')}` : 'nothing else was changed',
        skipped.length > 0 ? `not touched: ${skipped.join(', ')}` : undefined,
        'fix the cause and apply again: it continues from here',
      ]
        .filter(Boolean)
        .join('; '),
    });
  }
  return done;
}
