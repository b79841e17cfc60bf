/**
 * Pools, volumes and an instance's volume disks, implemented once over the core (the daemon's routes and the CLI
 * both call this). Copies (convert, import, export) are long work: checked first, then run as a job that reports
 * the bytes copied and stops when cancelled.
 */
import { isAbsolute } from 'node:path';
import { diskEndpoints, poolEndpoints, volumeEndpoints } from '../api/contracts/storage.ts';
import { instanceDiskView, poolView, volumeCheckView, volumeView } from './views.ts';
import { invalid } from '../lib/errors.ts';
import type { StorageService } from '../storage/service.ts';
import type { CopyOptions } from '../storage/volumes.ts';
import type { AppCore } from './context.ts';
import { job, type OperationContext } from './operations.ts';
import { checkRequestPath } from './request-paths.ts';
import { resource } from './resource.ts';
import { snapshots } from './snapshots.ts';

const pools = () => import('../storage/pools.ts');
const volumes = () => import('../storage/volumes.ts');

/** A file named in a request is on the host doing the work; a relative path would depend on its directory. */
function absoluteFile(file: string): string {
  if (!isAbsolute(file)) throw invalid('file', `"${file}" is not an absolute path`, "name the file by its full path on the daemon's host (the CLI resolves relative paths itself)");
  return file;
}

const copyOptions = (ctx: OperationContext): CopyOptions => ({ signal: ctx.signal, onProgress: (bytes, total) => ctx.transfer(bytes, total) });

async function volume(s: StorageService, name: string) {
  return volumeView(await (await volumes()).volumeInfo(s, name));
}

export const poolResource = resource('storage', poolEndpoints, (core: AppCore) => ({
  async list() {
    return (await (await pools()).listPools(await core.storage())).map((p) => poolView(p));
  },

  async create({ name, type, path, source }, caller) {
    if (path !== undefined) checkRequestPath(core.remotePaths, caller, '--path', path, 'directory'); // named as the core names it
    const [{ createPool, poolInfo }, s] = await Promise.all([pools(), core.storage()]);
    const request = { name, ...(type === undefined ? {} : { type }), ...(path === undefined ? {} : { path }), ...(source === undefined ? {} : { source }) };
    return poolView(await poolInfo(s, (await createPool(s, request)).name));
  },

  async get({ name }) {
    return poolView(await (await pools()).poolInfo(await core.storage(), name));
  },

  async delete({ name }) {
    (await pools()).removePool(await core.storage(), name);
    return { name, deleted: true };
  },
}));

export const volumeResource = resource('storage', volumeEndpoints, (core: AppCore) => ({
  async list({ pool }) {
    const found = await (await volumes()).listVolumes(await core.storage(), pool === undefined ? {} : { pool });
    return found.map((v) => volumeView(v));
  },

  async instanceDisks() {
    return (await (await volumes()).listInstanceDisks(await core.storage())).map(instanceDiskView);
  },

  async get({ name }) {
    return volume(await core.storage(), name);
  },

  async create({ name, size, format, preallocate, pool }) {
    const [{ createVolume }, s] = await Promise.all([volumes(), core.storage()]);
    const created = await createVolume(s, { name, size, preallocate: preallocate === true, ...(format === undefined ? {} : { format }), ...(pool === undefined ? {} : { pool }) });
    return volume(s, created.name);
  },

  async resize({ name, size, allowShrink }) {
    const r = await (await volumes()).resizeVolume(await core.storage(), name, size, { allowShrink: allowShrink === true });
    core.changed();
    return { volume: r.volume.name, from: r.from, to: r.to, live: r.live };
  },

  async convert({ name, format }) {
    const [{ checkConvert, convertVolume }, s] = await Promise.all([volumes(), core.storage()]);
    checkConvert(s, name, format);
    return job('volume-convert', `volumes/${name}`, async (ctx) => {
      await convertVolume(s, name, format, copyOptions(ctx));
      return volume(s, name);
    });
  },

  async check({ name }) {
    return volumeCheckView(await (await volumes()).checkVolume(await core.storage(), name));
  },

  async import({ file, ...fields }, caller) {
    checkRequestPath(core.remotePaths, caller, 'file', absoluteFile(file), 'file');
    const [{ checkImport, importVolume }, s] = await Promise.all([volumes(), core.storage()]);
    const request = {
      ...(fields.name === undefined ? {} : { name: fields.name }),
      ...(fields.pool === undefined ? {} : { pool: fields.pool }),
      ...(fields.format === undefined ? {} : { format: fields.format }),
    };
    const { name } = checkImport(s, absoluteFile(file), request);
    return job('volume-import', `volumes/${name}`, async (ctx) => volume(s, (await importVolume(s, file, request, copyOptions(ctx))).name));
  },

  async export({ name, file, format }, caller) {
    checkRequestPath(core.remotePaths, caller, 'file', absoluteFile(file), 'new-file');
    const [{ checkExport, exportVolume }, s] = await Promise.all([volumes(), core.storage()]);
    const request = format === undefined ? {} : { format };
    checkExport(s, name, absoluteFile(file), request);
    return job('volume-export', `volumes/${name}`, async (ctx) => exportVolume(s, name, file, request, copyOptions(ctx)));
  },

  async delete({ name }) {
    await (await volumes()).removeVolume(await core.storage(), name);
    return { name, deleted: true };
  },
}));

export const diskResource = resource('storage', diskEndpoints, (core: AppCore) => ({
  async attach({ name, volume }) {
    const change = await (await import('../storage/disks.ts')).attachDisk(await core.storage(), name, volume);
    core.changed();
    return change;
  },

  async detach({ name, volume }) {
    const change = await (await import('../storage/disks.ts')).detachDisk(await core.storage(), name, volume);
    core.changed();
    return change;
  },
}));

/** The storage resources as src/app/index.ts lists them (the keys of src/api/contracts/storage.ts). */
export const storageResources = { pools: poolResource, volumes: volumeResource, disks: diskResource, snapshots };
