import { accessSync, constants, statSync } from 'node:fs';
import { protocolNode } from '../qemu/protocol-node.ts';
import { isAbsolute, resolve } from 'node:path';
import { type HostLimits, hostLimits, validateCpus, validateMemory } from '../host/limits.ts';
import { invalid } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import { parseSize } from '../lib/units.ts';
import type { AccelRequest, Tuning } from './model.ts';
import { type NicRequest, validateNicRequests } from './nic-request.ts';
import { validateTuning } from './tuning.ts';

/** What a user asks for; strings as typed on the command line or sent over the API. */
export interface CreateRequest {
  name: string;
  cpus?: number | string;
  memory?: string;
  disk?: string;
  diskSize?: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  accel?: string;
  /** One or more: `user`, `none`, or managed network names. */
  network?: string | string[];
  ip?: string | string[];
  tuning?: Readonly<Record<string, unknown>>;
  /** `vm` only: a container's root filesystem comes from an image, through launch. */
  type?: string;
}

export interface ValidCreate {
  name: string;
  cpus: number;
  memoryMiB: number;
  accel: AccelRequest;
  disk?: { path: string } | { sizeBytes: number };
  boot?: { kernel: string; initrd?: string; cmdline?: string };
  nics: NicRequest[];
  tuning?: Tuning;
}

const ACCELS: readonly AccelRequest[] = ['auto', 'kvm', 'tcg'];

/** A file QEMU opens over NFS itself; whether it exists is asked of the server (qemu-img info) at create. */
function nfsFile(field: string, url: string): string {
  if (protocolNode(url).driver !== 'nfs' || /[\s?#]|\/\.\.?(\/|$)/.test(url)) {
    throw invalid(field, `"${url}" is not an nfs://SERVER/EXPORT/FILE URL`, 'e.g. nfs://192.0.2.10/srv/vm-disks/disk.qcow2');
  }
  return url;
}

function existingFile(field: string, path: string): string {
  const absolute = isAbsolute(path) ? path : resolve(path);
  let ok = false;
  try {
    ok = statSync(absolute).isFile();
    accessSync(absolute, constants.R_OK);
  } catch {
    ok = false;
  }
  if (!ok) throw invalid(field, `${path} does not exist or is not a readable file`);
  return absolute;
}

export function validateAccel(value: string | undefined): AccelRequest {
  const accel = (value ?? 'auto') as AccelRequest;
  if (!ACCELS.includes(accel)) throw invalid('--accel', `"${value}" is not valid`, 'use auto, kvm or tcg');
  return accel;
}

/** Checks every field before anything is created; the first problem is reported with its field. */
export function validateCreate(request: CreateRequest, limits: HostLimits = hostLimits()): ValidCreate {
  const name = validateName('name', request.name);
  if (request.type !== undefined && request.type !== 'vm') {
    throw invalid('--type', request.type === 'container' ? 'a container is made from an image' : `"${request.type}" is not an instance type`, `use: virtnode launch IMAGE --container --name ${name} --no-wait`);
  }

  const cpuCount = validateCpus(request.cpus, limits);
  const memoryMiB = validateMemory(request.memory ?? '512M', limits);
  const accel = validateAccel(request.accel);

  const nics = validateNicRequests(request.network, request.ip);

  if (request.disk !== undefined && request.diskSize !== undefined) {
    throw invalid('--disk', 'give either --disk PATH (an existing image) or --disk-size SIZE (a new empty disk), not both');
  }
  let disk: ValidCreate['disk'];
  if (request.disk !== undefined) disk = { path: request.disk.startsWith('nfs://') ? nfsFile('--disk', request.disk) : existingFile('--disk', request.disk) };
  if (request.diskSize !== undefined) disk = { sizeBytes: parseSize('--disk-size', request.diskSize) };

  if (request.kernel === undefined && (request.initrd !== undefined || request.cmdline !== undefined)) {
    throw invalid('--kernel', '--initrd and --cmdline need --kernel');
  }
  let boot: ValidCreate['boot'];
  if (request.kernel !== undefined) {
    boot = { kernel: existingFile('--kernel', request.kernel) };
    if (request.initrd !== undefined) boot.initrd = existingFile('--initrd', request.initrd);
    if (request.cmdline !== undefined) boot.cmdline = request.cmdline;
  }
  if (disk === undefined && boot === undefined) {
    throw invalid('--disk', 'an instance needs something to boot', 'give --disk PATH, --disk-size SIZE or --kernel FILE');
  }

  const valid: ValidCreate = { name, cpus: cpuCount, memoryMiB, accel, nics };
  if (request.tuning !== undefined) valid.tuning = validateTuning(request.tuning, { cpus: cpuCount, memoryMiB });
  if (disk !== undefined) valid.disk = disk;
  if (boot !== undefined) valid.boot = boot;
  return valid;
}
