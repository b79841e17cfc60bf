import { assertNoSnapshots } from '../storage/snapshot-guard.ts';
import { chmodSync, linkSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../exec/run.ts';
import type { CoreContext } from '../core/context.ts';
import { VirtnodeError, invalid } from '../lib/errors.ts';
import { failpoint } from '../lib/failpoint.ts';
import { validateName } from '../lib/names.ts';
import type { DiskFormat, DiskSpec, Instance, InstanceSpec, InstanceState } from '../instances/model.ts';
import { observeInstance } from '../instances/observe.ts';
import { InstanceService } from '../instances/service.ts';
import { notOffered } from '../instances/driver.ts';
import { driverFor } from '../instances/drivers/index.ts';
import { convertPercent, createImage, imageInfo } from '../qemu/img.ts';
import { acquireLock } from '../store/locks.ts';
import type { Template } from '../templates/model.ts';
import { BASES_LOCK, basesDir, rebaseOverlayOf } from '../templates/paths.ts';
import { type SealResult, sealOffline } from '../templates/seal.ts';
import { chainInside } from '../storage/backing.ts';
import { inheritedSpec, makeCloneIdentity } from './identity.ts';
import { cloneContainer } from './container.ts';
import type { CloneOptions, CloneResult } from './types.ts';

const CONVERT_TIMEOUT_MS = 6 * 60 * 60_000;
const SOURCE_LOCK_WAIT_MS = 10_000;
const CLONABLE: InstanceState[] = ['defined', 'stopped', 'crashed'];

export interface CloneRequest {
  source: string;
  name: string;
  linked?: boolean;
}

export type { CloneOptions, CloneResult } from './types.ts';

/** A full, independent copy (no backing file), with progress. */
export async function copyDisk(source: { path: string; format: DiskFormat }, target: string, options: CloneOptions = {}): Promise<void> {
  const total = (await imageInfo(source.path, { format: source.format })).virtualSize;
  const partial = `${target}.partial`;
  rmSync(partial, { force: true });
  try {
    await run(['qemu-img', 'convert', '-p', '-f', source.format, '-O', 'qcow2', source.path, partial], {
      timeoutMs: CONVERT_TIMEOUT_MS,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      onStdout: (chunk) => {
        const percent = convertPercent(chunk);
        if (percent !== undefined) options.onProgress?.(Math.round((percent / 100) * total), total);
      },
    });
    renameSync(partial, target);
    options.onProgress?.(total, total);
  } finally {
    rmSync(partial, { force: true });
  }
}

/**
 * Turns a stopped instance's current disk into a read-only base in `<state>/bases` and gives the instance a new
 * overlay on it, so linked clones can share the base while neither side ever writes it. Crash-safe without a
 * state change: the base is a hard link of the disk and the overlay replaces the disk by one rename; a base that
 * no disk ends up on is removed by reconciliation.
 */
async function makeReadOnlyBase(core: CoreContext, instance: Instance, disk: DiskSpec): Promise<string> {
  const release = await acquireLock(core.db, BASES_LOCK, 'make a read-only base', { waitMs: 60_000 });
  try {
    const dir = basesDir(core.paths);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const base = join(dir, `${instance.name}-${crypto.randomUUID().slice(0, 8)}.qcow2`);
    linkSync(disk.path, base);
    chmodSync(base, 0o444);
    failpoint('clone.after-base');
    const overlay = rebaseOverlayOf(disk.path);
    rmSync(overlay, { force: true });
    await createImage(overlay, { format: 'qcow2', backing: { path: base, format: 'qcow2' } });
    failpoint('clone.after-rebase-overlay');
    renameSync(overlay, disk.path);
    failpoint('clone.after-rebase');
    return base;
  } finally {
    release();
  }
}

function sourceNotFound(name: string): VirtnodeError {
  return new VirtnodeError('NOT_FOUND', `SRC: there is no instance or template named ${name}`, {
    field: 'SRC',
    hint: 'see `virtnode list` and `virtnode template ls`',
  });
}

/** The names of a clone, checked before anything is done (the daemon checks them before it starts the operation). */
export async function checkClone(core: CoreContext, request: CloneRequest): Promise<{ sourceName: string; name: string }> {
  const sourceName = validateName('SRC', request.source);
  const name = validateName('NEW', request.name);
  if (sourceName === name) throw invalid('NEW', `"${name}" is the source's own name`, 'give the clone a new name');
  await core.ensureReconciled();
  const templates = core.repos.templates;
  if (templates.get(sourceName) === undefined && core.repos.instances.get(sourceName) === undefined) throw sourceNotFound(sourceName);
  const sourceInstance = core.repos.instances.get(sourceName);
  if (sourceInstance !== undefined) {
    const driver = driverFor(core.paths, sourceInstance);
    if (!driver.capabilities.clones) notOffered(sourceInstance, driver, 'be cloned');
    if (request.linked === true && driver.capabilities.storage === 'upper-dir') {
      throw invalid('--linked', `${sourceName} is a container: its clones are copies of its upper directory on the image's shared tree (already copy-on-write)`, 'clone without --linked');
    }
  }
  if (templates.get(name) !== undefined || core.repos.instances.get(name) !== undefined) {
    throw new VirtnodeError('CONFLICT', `NEW: ${name} already exists`, { field: 'NEW', hint: 'choose another name' });
  }
  return { sourceName, name };
}

/**
 * `virtnode clone SRC NEW [--linked]`: a new instance with the source's disk (a full copy, or a linked overlay)
 * and an identity of its own. A source instance must be stopped (a disk in use is never copied); its copy is
 * sealed offline, since it carries the source's machine-id, host keys and leases. A template is sealed already.
 * NEW goes through the `creating` state like `create`, so an interrupted clone leaves nothing behind.
 */
export async function cloneInstance(core: CoreContext, request: CloneRequest, options: CloneOptions = {}): Promise<CloneResult> {
  const { sourceName, name } = await checkClone(core, request);
  const templates = core.repos.templates;
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  // Held for the whole clone: the source cannot start, be deleted or (a template) be removed meanwhile.
  const release = await acquireLock(core.db, sourceName, 'clone', { waitMs: SOURCE_LOCK_WAIT_MS, ...signal });
  try {
    const template = templates.get(sourceName);
    let source: Instance | undefined;
    if (template === undefined) {
      const recorded = core.repos.instances.get(sourceName);
      if (recorded === undefined) throw sourceNotFound(sourceName);
      source = await observeInstance(core, recorded);
      if (!CLONABLE.includes(source.state)) {
        throw new VirtnodeError('INVALID_STATE', `cannot clone instance ${sourceName}: it is ${source.state} (clone needs ${CLONABLE.join(', ')})`, {
          hint: `a disk in use is never copied: stop it first (virtnode stop ${sourceName}), or make it a template (virtnode template create ${sourceName})`,
        });
      }
    }
    if ((template?.defaults.container ?? source?.spec.container) !== undefined) {
      if (request.linked === true) throw invalid('--linked', `${sourceName} is a container template: container clones are always copies of its upper directory`, 'clone without --linked');
      return await cloneContainer(core, name, { template, source }, options);
    }
    const disk = template === undefined ? source!.spec.disks[0] : { id: 'disk0', path: template.diskPath, format: template.format, owned: true };
    if (disk === undefined) throw invalid('SRC', `instance ${sourceName} has no disk to clone`);
    if (request.linked === true && source !== undefined && (!disk.owned || disk.format !== 'qcow2')) {
      throw invalid('--linked', `the disk of ${sourceName} (${disk.path}) is not a qcow2 disk virtnode made`, 'make a full clone instead (without --linked)');
    }
    if (request.linked === true && source !== undefined && chainInside(disk.path, core.paths.instanceDir(sourceName)).length > 0) {
      throw invalid('--linked', `the disk of ${sourceName} sits on external snapshots in its own directory`, 'delete (merge) its external snapshots first, or make a full clone');
    }
    // A full copy takes the current state only; a linked clone would strand the source's snapshots on its base.
    if (request.linked === true && source !== undefined) assertNoSnapshots(core.db, sourceName, 'make a linked clone of');
    return await cloneFrom(core, name, { template, source, disk, linked: request.linked === true }, options);
  } finally {
    release();
  }
}

async function cloneFrom(
  core: CoreContext,
  name: string,
  from: { template: Template | undefined; source: Instance | undefined; disk: DiskSpec; linked: boolean },
  options: CloneOptions,
): Promise<CloneResult> {
  const { template, source, disk, linked } = from;
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  const backing = !linked ? undefined : template !== undefined ? { path: template.diskPath, format: template.format } : { path: await makeReadOnlyBase(core, source!, disk), format: 'qcow2' as const };
  const defaults = template?.defaults ?? { ...source!.spec, networks: source!.nics.map((n) => n.network) };
  const draft = inheritedSpec(defaults);
  // A linked clone still sits on the source's image, which must then stay (image rm checks spec.image).
  const image = !linked ? undefined : template !== undefined ? template.image : source!.spec.image;
  if (image !== undefined) draft.image = image;
  const user = template !== undefined ? template.defaults.user : source!.spec.ssh?.user;
  let seal: SealResult | undefined;
  // One NIC on each of the source's networks, each with a new MAC and (managed networks) a new DHCP address.
  const nics = defaults.networks.map((network) => ({ network }));
  const instance = await new InstanceService(core).define(name, draft, { nics, ...signal }, async (dir) => {
    const path = join(dir, 'disk0.qcow2');
    if (backing !== undefined) await createImage(path, { format: 'qcow2', backing, ...signal });
    else await copyDisk(disk, path, options);
    failpoint('clone.after-disk');
    if (template === undefined) seal = await sealOffline(core.paths, { path, format: 'qcow2' }, signal);
    failpoint('clone.after-seal');
    const identity = await makeCloneIdentity(core, dir, name, { user, ...signal });
    const spec: InstanceSpec = { ...draft, instanceId: identity.instanceId, disks: [{ id: 'disk0', path, format: 'qcow2', owned: true }, identity.seedDisk] };
    if (identity.ssh !== undefined) spec.ssh = identity.ssh;
    return spec;
  });
  return {
    instance,
    mode: linked ? 'linked' : 'full',
    from: template === undefined ? 'instance' : 'template',
    ...(linked && template === undefined && backing !== undefined ? { base: backing.path } : {}),
    seal,
  };
}

