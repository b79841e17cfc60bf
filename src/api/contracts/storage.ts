/**
 * Storage: pools (`virtnode pool ...`, `/pools`), volumes (`virtnode volume ...`, `/volumes`) and an instance's
 * volume disks (`virtnode disk ...`, `/instances/{name}/disks`); snapshots are in ./snapshots.ts. Paths in a
 * request are on the daemon's host and absolute. Routes marked `nameCheckedByCore` leave the names to the core,
 * which names the field as the CLI does (`volume`, `instance`).
 */
import Type from 'typebox';
import { endpoints } from '../endpoint.ts';
import {
  AttachDiskBody,
  CheckedNameParams,
  ConvertVolumeBody,
  CreatePoolBody,
  CreateVolumeBody,
  DiskChange,
  DiskParams,
  ExportVolumeBody,
  ImportVolumeBody,
  InstanceDisk,
  Pool,
  ResizeVolumeBody,
  Volume,
  VolumeCheck,
  VolumeExport,
  VolumeResize,
  VolumesQuery,
} from '../schemas.ts';
import { Deleted } from './instances.ts';
import { snapshotEndpoints } from './snapshots.ts';

export const poolEndpoints = endpoints({
  list: { method: 'GET', path: '/pools', summary: 'pools with the size, use and free space of the filesystem holding each', response: Type.Array(Pool) },
  create: {
    method: 'POST',
    path: '/pools',
    summary: "register an existing directory (absolute path on the daemon's host) as a pool (`virtnode pool create`)",
    body: CreatePoolBody,
    response: Pool,
    status: 201,
  },
  get: { method: 'GET', path: '/pools/:name', summary: 'one pool, with its volumes', params: CheckedNameParams, response: Pool },
  delete: { method: 'DELETE', path: '/pools/:name', summary: 'forget a pool (its directory stays); refused while it holds volumes', params: CheckedNameParams, response: Deleted },
});

export const volumeEndpoints = endpoints({
  list: {
    method: 'GET',
    path: '/volumes',
    summary: 'volumes, with virtual size, allocation and the instance using each (?pool=NAME: only that pool)',
    query: VolumesQuery,
    response: Type.Array(Volume),
  },
  instanceDisks: {
    method: 'GET',
    path: '/instance-disks',
    summary: "the instances' own disks (made by create/launch in their directories; not volumes): `virtnode volume ls --all`",
    response: Type.Array(InstanceDisk),
  },
  get: { method: 'GET', path: '/volumes/:name', summary: 'one volume, with its backing chain', params: CheckedNameParams, response: Volume, nameCheckedByCore: true },
  create: { method: 'POST', path: '/volumes', summary: 'a new empty disk image in a pool (`virtnode volume create`)', body: CreateVolumeBody, response: Volume, status: 201 },
  resize: {
    method: 'POST',
    path: '/volumes/:name/resize',
    summary: "change a volume's virtual size (live through QMP when its instance runs); a smaller size needs allowShrink",
    params: CheckedNameParams,
    body: ResizeVolumeBody,
    response: VolumeResize,
    nameCheckedByCore: true,
  },
  convert: {
    method: 'POST',
    path: '/volumes/:name/convert',
    summary: 'rewrite a volume in another format, not while attached (an operation; result: the volume)',
    params: CheckedNameParams,
    body: ConvertVolumeBody,
    response: Volume,
    operation: true,
    nameCheckedByCore: true,
  },
  check: { method: 'GET', path: '/volumes/:name/check', summary: 'check a volume for consistency (qemu-img check)', params: CheckedNameParams, response: VolumeCheck, nameCheckedByCore: true },
  import: {
    method: 'POST',
    path: '/volumes/import',
    summary: "copy an image file on the daemon's host (absolute path) into a new volume, backing chain flattened (an operation; result: the volume)",
    body: ImportVolumeBody,
    response: Volume,
    operation: true,
  },
  export: {
    method: 'POST',
    path: '/volumes/:name/export',
    summary: "copy a volume out to a new file on the daemon's host (absolute path; never overwrites) (an operation; result: {path, format})",
    params: CheckedNameParams,
    body: ExportVolumeBody,
    response: VolumeExport,
    operation: true,
    nameCheckedByCore: true,
  },
  delete: { method: 'DELETE', path: '/volumes/:name', summary: 'delete a volume and its file (refused while attached)', params: CheckedNameParams, response: Deleted, nameCheckedByCore: true },
});

export const diskEndpoints = endpoints({
  attach: {
    method: 'POST',
    path: '/instances/:name/disks',
    summary: 'attach a volume as a virtio disk (hot-plugged if the instance runs; kept for the next start)',
    params: CheckedNameParams,
    body: AttachDiskBody,
    response: DiskChange,
    status: 201,
    nameCheckedByCore: true,
  },
  detach: {
    method: 'DELETE',
    path: '/instances/:name/disks/:volume',
    summary: 'detach a volume (live: waits until the guest has released it)',
    params: DiskParams,
    response: DiskChange,
    nameCheckedByCore: true,
  },
});

/** The storage resources as src/api/contracts/index.ts lists them. */
export const storageEndpoints = { pools: poolEndpoints, volumes: volumeEndpoints, disks: diskEndpoints, snapshots: snapshotEndpoints };
