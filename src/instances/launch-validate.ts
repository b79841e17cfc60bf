import { existsSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parse } from 'yaml';
import { invalid, VirtnodeError } from '../lib/errors.ts';
import { validateName } from '../lib/names.ts';
import { formatIssues, userDataKind, validateCloudConfig } from '../cloudinit/validate.ts';
import type { ValidationIssue } from '../cloudinit/validate.ts';
import { parseSize } from '../lib/units.ts';
import { assertLayerMinimum } from './drivers/lxc/layer.ts';
import { type NicRequest, validateNicRequests } from './nic-request.ts';
import { type HostLimits, hostLimits, validateCpus, validateMemory } from '../host/limits.ts';
import { validateAccel } from './validate.ts';
import { validateTuning } from './tuning.ts';
import type { Tuning } from './model.ts';
import { INSTANCE_TYPES, type InstanceType } from './model.ts';

export interface LaunchRequest {
  image: string;
  /** `vm` (default) or `container` (a system container through LXC). */
  type?: string;
  /** Containers: root in the container is root on the host. */
  privileged?: boolean;
  name?: string;
  cpus?: string;
  memory?: string;
  diskSize?: string;
  /** Where the disk is made instead of the instance directory: a pool's directory or nfs:// URL (resolved above). */
  diskLocation?: string;
  sshKeys?: string[];
  userData?: string;
  networkConfig?: string;
  /** The API's way (no files on the daemon's host): key lines, user-data and network-config as text. */
  sshAuthorizedKeys?: string[];
  userDataText?: string;
  networkConfigText?: string;
  timezone?: string;
  passwordHash?: string;
  user?: string;
  accel?: string;
  seed?: string;
  /** Managed networks for NICs after the management NIC (user-mode, carries SSH). */
  networks?: string[];
  ips?: string[];
  tuning?: Readonly<Record<string, unknown>>;
  /** Load the template's warm state (true) or boot (false); undefined: warm when there is one and the launch fits it. */
  warm?: boolean;
}

export interface ValidLaunch {
  image: string;
  type: InstanceType;
  privileged: boolean;
  name: string;
  cpus: number;
  memoryMiB: number;
  accel: 'auto' | 'kvm' | 'tcg';
  diskSizeBytes: number | undefined;
  sshAuthorizedKeys: string[];
  userData: string | undefined;
  /** Warnings from the cloud-config check, for the caller to show. */
  userDataWarnings: ValidationIssue[];
  networkConfig: string | undefined;
  timezone: string | undefined;
  passwordHash: string | undefined;
  user: string;
  /** NoCloud (iso, vfat, http) or an OpenStack config drive (configdrive). */
  seedFormat: 'iso' | 'vfat' | 'http' | 'configdrive';
  /** NIC 0 is always user-mode (virtnode reaches SSH through it); these follow it. */
  nics: NicRequest[];
  tuning: Tuning | undefined;
  warm: boolean | undefined;
}

const USER_DATA_LIMIT_BYTES = 1024 * 1024;
const PUBLIC_KEY_LINE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( .*)?$/;
const CRYPT_HASH = /^\$(1|5|6|y|2[aby])\$[^\s:]+$/;
const TIMEZONE = /^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/;
const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

export function readText(field: string, path: string, limit = USER_DATA_LIMIT_BYTES): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw invalid(field, `${path} does not exist or cannot be read`);
  }
  if (size > limit) throw invalid(field, `${path} is ${size} bytes; the limit is ${limit}`);
  return readFileSync(path, 'utf8');
}

/** A default name: the image's name plus a random suffix, always a valid DNS label. */
export function defaultInstanceName(image: string): string {
  const base = (image.split('/').pop() ?? 'vm').replace(/\.(qcow2|raw|img)$/, '').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 'vm';
  return `${base}-${randomBytes(2).toString('hex')}`;
}

/** Checks every launch input before anything is made; errors name the flag and what would be valid. */
export function validateLaunch(request: LaunchRequest, limits: HostLimits = hostLimits()): ValidLaunch {
  if (typeof request.image !== 'string' || request.image === '') throw invalid('IMAGE', 'an image is required', 'see `virtnode image ls`');
  const name = validateName('--name', request.name ?? defaultInstanceName(request.image));
  // CPU, memory and accelerator follow the rules of `create`.
  const cpus = validateCpus(request.cpus, limits);
  const memoryMiB = validateMemory(request.memory ?? '1G', limits);
  const accel = validateAccel(request.accel);
  const diskSizeBytes = request.diskSize === undefined ? undefined : parseSize('--disk-size', request.diskSize);

  const sshAuthorizedKeys: string[] = [];
  for (const file of request.sshKeys ?? []) {
    const lines = readText('--ssh-key', file, 64 * 1024).split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    if (lines.length === 0 || lines.some((l) => !PUBLIC_KEY_LINE.test(l))) {
      throw invalid('--ssh-key', `${file} is not an OpenSSH public key file`, 'give the .pub file, e.g. ~/.ssh/id_ed25519.pub (never the private key)');
    }
    sshAuthorizedKeys.push(...lines);
  }
  for (const line of request.sshAuthorizedKeys ?? []) {
    if (!PUBLIC_KEY_LINE.test(line.trim())) throw invalid('sshAuthorizedKeys', `"${line.slice(0, 40)}…" is not an OpenSSH public key line`, 'give the content of a .pub file, e.g. ~/.ssh/id_ed25519.pub');
    sshAuthorizedKeys.push(line.trim());
  }

  let userData: string | undefined;
  let userDataWarnings: ValidationIssue[] = [];
  const userDataSource = request.userData ?? (request.userDataText === undefined ? undefined : 'userData');
  if (userDataSource !== undefined) {
    userData = request.userDataText ?? readText('--user-data', userDataSource);
    if (userData.length > USER_DATA_LIMIT_BYTES) throw invalid('userData', `it is ${userData.length} bytes; the limit is ${USER_DATA_LIMIT_BYTES}`);
    const kind = userDataKind(userData);
    if (kind === 'cloud-config') {
      const result = validateCloudConfig(userData, { source: userDataSource });
      if (!result.ok) {
        throw new VirtnodeError('INVALID', `--user-data: ${userDataSource} is not a valid cloud-config:\n${formatIssues(result, userDataSource)}`, {
          field: '--user-data',
          hint: `check it alone with: virtnode cloud-init validate ${userDataSource}`,
        });
      }
      userDataWarnings = result.issues;
    } else if (kind === 'unknown' || kind === 'jinja') {
      throw invalid('--user-data', `${userDataSource} is not user-data cloud-init understands`, 'start it with #cloud-config (or #! for a script, #include for URLs)');
    }
  }

  let networkConfig: string | undefined;
  const networkConfigSource = request.networkConfig ?? (request.networkConfigText === undefined ? undefined : 'networkConfig');
  if (networkConfigSource !== undefined) {
    networkConfig = request.networkConfigText ?? readText('--network-config', networkConfigSource);
    let parsed: unknown;
    try {
      parsed = parse(networkConfig);
    } catch (e) {
      throw invalid('--network-config', `${networkConfigSource}: ${(e as Error).message.split('\n')[0]}`);
    }
    const root = (parsed as { network?: unknown } | null)?.network ?? parsed;
    const version = (root as { version?: unknown } | null)?.version;
    if (version !== 1 && version !== 2) throw invalid('--network-config', `${networkConfigSource} needs "version: 1" or "version: 2"`, 'see cloud-init\'s network-config format v2');
  }

  if (request.timezone !== undefined && (!TIMEZONE.test(request.timezone) || request.timezone.includes('..') || !existsSync(`/usr/share/zoneinfo/${request.timezone}`))) {
    throw invalid('--timezone', `"${request.timezone}" is not a known time zone`, 'use a name like Europe/Paris or UTC (see /usr/share/zoneinfo)');
  }
  if (request.passwordHash !== undefined && !CRYPT_HASH.test(request.passwordHash)) {
    throw invalid('--password-hash', 'that is not a crypt(3) hash', "make one with: openssl passwd -6 (never pass a plain password)");
  }
  const user = request.user ?? 'virtnode';
  if (!USER_NAME.test(user)) throw invalid('--user', `"${user}" is not a valid user name`, 'lowercase letters, digits, _ and -, starting with a letter');
  const seed = request.seed ?? 'iso';
  if (seed !== 'iso' && seed !== 'vfat' && seed !== 'http' && seed !== 'configdrive') throw invalid('--seed', `"${seed}" is not valid`, 'use iso (default), vfat, http, or configdrive');
  if (seed === 'configdrive' && networkConfig !== undefined) {
    throw invalid('--network-config', 'cannot be combined with --seed configdrive: a config drive carries OpenStack network_data.json', 'use --network/--ip, or a NoCloud seed (iso, vfat)');
  }

  const type = request.type ?? 'vm';
  if (!INSTANCE_TYPES.includes(type as InstanceType)) throw invalid('--type', `"${type}" is not an instance type`, 'use vm (default) or container');
  if (request.privileged === true && type !== 'container') throw invalid('--privileged', 'only containers can be privileged', 'add --container');
  const extra = validateNicRequests(request.networks, request.ips, []);
  if (extra.some((n) => n.network === 'user')) {
    throw invalid('--network', type === 'container' ? 'containers have no user-mode network: name managed networks only' : 'launch always gives NIC 0 the user-mode network (for SSH); name managed networks only');
  }
  if (extra.length > 0 && networkConfig !== undefined) throw invalid('--network-config', 'cannot be combined with --network: virtnode writes the network-config for managed networks');
  if (type === 'container' && request.tuning !== undefined && Object.keys(request.tuning).length > 0) {
    throw invalid('tuning', "the tuning knobs (--cpu-model, --pin-vcpus, --hugepages, --disk-cache...) set how QEMU runs a VM; a container runs on the host's kernel", 'leave them out for containers (--cpus and --memory still limit it)');
  }
  const tuning = request.tuning === undefined ? undefined : validateTuning(request.tuning, { cpus, memoryMiB });
  if (type === 'container' && request.seed !== undefined && request.seed !== 'iso') {
    throw invalid('--seed', 'a container\'s NoCloud seed is written into its root filesystem', 'leave --seed out for containers');
  }
  // A container's writes then go to an ext4 image of that size (drivers/lxc/layer.ts); free space is checked on the host.
  if (type === 'container' && diskSizeBytes !== undefined) assertLayerMinimum('--disk-size', diskSizeBytes);
  if (type === 'container' && request.accel !== undefined && request.accel !== 'auto') throw invalid('--accel', 'containers run on the host kernel: there is no accelerator to choose');
  if (type === 'container' && request.warm === true) throw invalid('--warm', "a container starts in seconds from its image: there is no warm state to load", 'leave --warm out for containers');
  return {
    warm: request.warm,
    tuning,
    // A VM's NIC 0 is user-mode (SSH through a forwarded port); a container's NICs are managed networks only.
    nics: type === 'container' ? extra : [{ network: 'user' }, ...extra],
    type: type as InstanceType,
    privileged: request.privileged === true,
    image: request.image,
    name,
    cpus,
    memoryMiB,
    accel,
    diskSizeBytes,
    sshAuthorizedKeys,
    userData,
    userDataWarnings,
    networkConfig,
    timezone: request.timezone,
    passwordHash: request.passwordHash,
    user,
    seedFormat: seed,
  };
}
