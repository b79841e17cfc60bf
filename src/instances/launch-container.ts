import { chmodSync, chownSync, lchownSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { setHostKeys } from '../cloudinit/known-hosts.ts';
import { generateHostKeys } from '../cloudinit/ssh-host-keys.ts';
import type { CoreContext } from '../core/context.ts';
import { run } from '../exec/run.ts';
import { hostCgroupVersion } from '../host/cgroups.ts';
import { ensureRootfs } from '../images/rootfs.ts';
import { isVirtnodeError, VirtnodeError } from '../lib/errors.ts';
import { failpoint } from '../lib/failpoint.ts';
import { formatSize } from '../lib/units.ts';
import { assertSubordinateIds } from './drivers/lxc/driver.ts';
import { assertLayerSize, createLayer } from './drivers/lxc/layer.ts';
import type { ImageResolver, LaunchOptions, LaunchResult } from './launch.ts';
import { clientKey, DEFAULT_READY_TIMEOUT_MS, renderSeedFiles } from './launch.ts';
import type { ValidLaunch } from './launch-validate.ts';
import type { InstanceSpec } from './model.ts';
import type { NicRequest } from './nic-request.ts';
import { parseCloudInitStatus, type Phase } from './readiness.ts';
import type { InstanceService } from './service.ts';

/** Root in an unprivileged container is this host uid (and gid); the container owns the 65536 ids from it. */
export const CONTAINER_ID_BASE = 100_000;
export const DEFAULT_MAX_PROCESSES = 4096;
/** The network a container without --network joins, made on first use (the role lxdbr0 or virbr0 play). */
export const DEFAULT_CONTAINER_NETWORK = 'default';
const SSH_GUEST_PORT = 22;
const NOCLOUD_DIR = 'var/lib/cloud/seed/nocloud-net';
/** A container has no serial device, disk label or kernel debugfs: these units would only wait or fail. */
const MASKED_UNITS = ['serial-getty@ttyS0.service', 'sys-kernel-debug.mount'];

/** The default NAT network, made now if it does not exist (on the first subnet no route or network uses). */
export async function ensureDefaultNetwork(core: CoreContext): Promise<string> {
  if (core.networks.repo.get(DEFAULT_CONTAINER_NETWORK) !== undefined) return DEFAULT_CONTAINER_NETWORK;
  try {
    await core.networks.create({ name: DEFAULT_CONTAINER_NETWORK, mode: 'nat' });
  } catch (e) {
    if (!isVirtnodeError(e, 'CONFLICT') || core.networks.repo.get(DEFAULT_CONTAINER_NETWORK) === undefined) throw e; // else made meanwhile
  }
  return DEFAULT_CONTAINER_NETWORK;
}

/**
 * An unprivileged container's root (a host uid that is nobody's) must pass through every directory above its
 * layers: `search` permission for others on each directory from the state directory down (never `read`, so it
 * lists nothing; the files inside keep their own modes).
 */
export function allowTraversal(root: string, dir: string): void {
  const rel = relative(root, dir);
  if (rel.startsWith('..')) return;
  let current = root;
  for (const part of ['', ...rel.split(sep).filter((p) => p !== '')]) {
    current = part === '' ? current : join(current, part);
    const mode = statSync(current).mode & 0o7777;
    if ((mode & 0o001) === 0) chmodSync(current, mode | 0o001);
  }
}

/** Writes `text` at `rel` in the upper directory, making its parents, everything owned by the container's root. */
function writeInto(upper: string, rel: string, text: string, mode: number, owner: number): void {
  const path = join(upper, rel);
  makeParents(upper, dirname(rel), owner);
  writeFileSync(path, text, { mode });
  chownSync(path, owner, owner);
}

function makeParents(upper: string, rel: string, owner: number): void {
  let current = upper;
  for (const part of rel.split('/').filter((p) => p !== '' && p !== '.')) {
    current = join(current, part);
    try {
      mkdirSync(current, { mode: 0o755 });
      chownSync(current, owner, owner);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/**
 * The first-boot files of a container, written into its overlay's upper directory before the first start: the
 * NoCloud seed, an empty fstab (the image's `LABEL=root` line has no device here), the units that only wait
 * for hardware masked, and an empty machine-id so that systemd makes a fresh one.
 */
export function writeContainerFirstBoot(upper: string, seed: Record<string, string>, owner: number): void {
  for (const [file, text] of Object.entries(seed)) writeInto(upper, `${NOCLOUD_DIR}/${file}`, text, 0o600, owner);
  writeInto(upper, 'etc/fstab', '# root and everything else are mounted by LXC (virtnode container)\n', 0o644, owner);
  writeInto(upper, 'etc/machine-id', '', 0o444, owner);
  makeParents(upper, 'etc/systemd/system', owner);
  for (const unit of MASKED_UNITS) {
    const link = join(upper, 'etc/systemd/system', unit);
    rmSync(link, { force: true }); // a clone's copy has them already
    symlinkSync('/dev/null', link);
    lchownSync(link, owner, owner);
  }
}

/** The checks of a launch that need this host: a container's disk size its filesystem can hold. */
export function checkLaunchOnHost(service: InstanceService, valid: ValidLaunch): void {
  if (valid.type === 'container' && valid.diskSizeBytes !== undefined) assertLayerSize('--disk-size', valid.diskSizeBytes, service.paths.instances);
}

/**
 * Launch of a system container: image → its root filesystem (unpacked once per image, shared read-only) →
 * identity (instance-id, host keys) → NoCloud seed in the container's overlay → start → cloud-init finished
 * (asked through lxc-attach, no SSH needed). The same phases as a VM's launch, with the same identity rules.
 */
export async function launchContainer(service: InstanceService, resolveImage: ImageResolver, valid: ValidLaunch, options: LaunchOptions = {}): Promise<LaunchResult> {
  const started = Date.now();
  const phase = (p: Phase, detail: string) => options.onPhase?.(p, detail, Date.now() - started);
  const signal = options.signal ? { signal: options.signal } : {};
  checkLaunchOnHost(service, valid); // before anything is made
  const image = await resolveImage(valid.image);
  if (image.boot !== undefined) {
    throw new VirtnodeError('INVALID', `image ${image.name} boots its own kernel (a template of a kernel-booted VM): it cannot be a container's root filesystem`, { field: 'IMAGE' });
  }
  phase('image', `${image.name} (${image.format}, sha256 ${image.sha256.slice(0, 12)})`);
  const idmapBase = valid.privileged ? undefined : CONTAINER_ID_BASE;
  const owner = idmapBase ?? 0;
  if (idmapBase !== undefined) assertSubordinateIds(idmapBase); // before anything is unpacked or made
  const lowerDir = await ensureRootfs(service.paths.images, { path: image.path, sha256: image.sha256, format: image.format }, owner, signal);
  const key = await clientKey(service.core);
  const nics: NicRequest[] = valid.nics.length > 0 ? valid.nics : [{ network: await ensureDefaultNetwork(service.core) }];

  const draft: InstanceSpec = {
    cpus: valid.cpus,
    memoryMiB: valid.memoryMiB,
    accel: 'auto',
    disks: [],
    image: { name: image.name, sha256: image.sha256, path: image.path },
    container: { lowerDir, idmapBase, maxProcesses: DEFAULT_MAX_PROCESSES, ...(valid.diskSizeBytes === undefined ? {} : { diskSizeBytes: valid.diskSizeBytes }) },
  };
  const defined = await service.define(valid.name, draft, { nics, type: 'container', ...signal }, async (dir, reverter) => {
    const layer = await createLayer(dir, draft.container!, owner, { reverter, ...signal });
    if (idmapBase !== undefined) for (const d of [dir, lowerDir]) allowTraversal(service.paths.root, d);
    const sized = valid.diskSizeBytes === undefined ? '' : `; its writes in a ${formatSize(valid.diskSizeBytes)} ext4 image`;
    phase('disk', `overlay on the shared root filesystem of ${image.name} (${lowerDir})${sized}`);
    const instanceId = `i-${crypto.randomUUID()}`;
    const hostKeys = await generateHostKeys(join(dir, 'ssh'), { comment: `${valid.name} host key (virtnode)` });
    const seed = renderSeedFiles(service, valid, key.publicKey, instanceId, hostKeys);
    writeContainerFirstBoot(layer.upper, seed.files, owner);
    failpoint('launch.after-seed');
    phase('seed', `NoCloud in the root filesystem (instance-id ${instanceId})`);
    const address = service.repo.get(valid.name)!.nics.find((n) => n.address !== undefined)?.address;
    if (address !== undefined) await setHostKeys(service.paths.knownHosts, [address], hostKeys.map((k) => k.publicKey), { marker: valid.name });
    return {
      ...draft,
      instanceId,
      ssh: {
        user: valid.user,
        identityFile: key.identityFile,
        guestPort: SSH_GUEST_PORT,
        ...(address === undefined ? {} : { address }),
        hostKeyFingerprints: hostKeys.map((k) => k.fingerprint),
        hostPublicKeys: hostKeys.map((k) => k.publicKey),
      },
    };
  });
  if (valid.privileged) phase('seed', 'warning: privileged container: root in it is root on this host');

  failpoint('launch.after-define');
  let instance = await service.start(defined.name, signal);
  phase('booting', `LXC, init pid ${instance.pid} (cgroup v${hostCgroupVersion()})`);
  const address = instance.spec.ssh?.address;
  if (address !== undefined) phase('ip', `${address} (reserved on ${instance.nics[0]!.network})`);
  if (options.noWait) return { instance, valid, address, cloudInit: undefined };

  const deadline = started + (options.timeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
  const argv = await service.execArgv(defined.name, ['cloud-init', 'status', '--wait', '--long']);
  let stdout: string;
  try {
    ({ stdout } = await run(argv, { timeoutMs: Math.max(deadline - Date.now(), 1_000), okCodes: [0, 1, 2], ...signal }));
  } catch (e) {
    if (Date.now() >= deadline - 1_000 && !options.signal?.aborted) {
      throw new VirtnodeError('TIMEOUT', `${defined.name} is still provisioning after ${Math.round((Date.now() - started) / 1000)} s (it has not failed)`, {
        hint: `follow it with \`virtnode logs --follow ${defined.name}\`, or look inside: virtnode exec ${defined.name} -- cloud-init status`,
      });
    }
    throw e;
  }
  const cloudInit = parseCloudInitStatus(stdout);
  const detail = `${cloudInit.status}${cloudInit.datasource ? ` (datasource ${cloudInit.datasource})` : ''}${cloudInit.detail ? `: ${cloudInit.detail}` : ''}`;
  phase('cloud-init', detail);
  service.recordReadiness(defined.name, 'cloud-init', detail);
  if (cloudInit.datasource !== undefined && !cloudInit.datasource.startsWith('NoCloud')) {
    throw new VirtnodeError('COMMAND_FAILED', `cloud-init in ${defined.name} used DataSource${cloudInit.datasource}, not NoCloud: the seed was ignored`, {
      hint: `see virtnode exec ${defined.name} -- cat /var/log/cloud-init.log`,
    });
  }
  instance = await service.get(defined.name);
  phase('ready', `exec: virtnode exec ${defined.name} -- CMD${address === undefined ? '' : `; ssh: virtnode shell ${defined.name}`}`);
  return { instance, valid, address, cloudInit };
}
