import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileExists, removeFile } from '../nfs/files.ts';
import { join } from 'node:path';
import { buildConfigDrive, buildSeed } from '../cloudinit/seed.ts';
import { renderConfigDrive } from '../cloudinit/config-drive.ts';
import { USER_DATA_AFTER_FIRST_BOOT, markFirstBootDone, renderHttpSeedVendorData } from '../cloudinit/http-seed.ts';
import { renderMetaData, renderNetworkConfig, renderUserData } from '../cloudinit/render.ts';
import { type GeneratedKey, generateHostKeys, generateUserKey } from '../cloudinit/ssh-host-keys.ts';
import type { CoreContext } from '../core/context.ts';
import { VirtnodeError } from '../lib/errors.ts';
import { delaypoint, failpoint } from '../lib/failpoint.ts';
import { createImage } from '../qemu/img.ts';
import { acquireLock } from '../store/locks.ts';
import { type DiskFormat, type ImageRef, type Instance, type InstanceSpec, type KernelBoot, USER_MODE_GUEST_ADDRESS, USER_NETWORK } from './model.ts';
import type { NetworkRequest, NicNetworkConfig } from '../cloudinit/render.ts';
import { type LaunchRequest, type ValidLaunch, validateLaunch } from './launch-validate.ts';
import { type CloudInitResult, guestNetwork, type Phase, type PhaseListener, verifySshWhenUp, waitForCloudInit } from './readiness.ts';
import { ConsoleNetworkWatch, type SshProbeMode, waitForSshBanner } from './ssh-probe.ts';
import { METADATA_ADDRESS } from './qemu-spec.ts';
import { chooseWarm, type WarmSource } from './launch-warm.ts';
import { runtimePaths } from './runtime.ts';
import { describeFirstBoot, warmFirstBoot } from './warm-first-boot.ts';
import type { InstanceService } from './service.ts';

export const DEFAULT_READY_TIMEOUT_MS = 15 * 60_000;

const SEED_DESCRIPTION: Record<ValidLaunch['seedFormat'], string> = {
  iso: 'NoCloud iso',
  vfat: 'NoCloud vfat',
  http: 'NoCloud over HTTP, for this guest only',
  configdrive: 'OpenStack config drive (config-2)',
};
const SSH_GUEST_PORT = 22;
/** How often a launch asks the guest agent for the guest's addresses. */
const ADDRESS_POLL_MS = 1_000;
/** How long a launch waits for the guest to show its network is up before it probes SSH blind. */
const BLIND_PROBES_AFTER_MS = 60_000;

export interface ResolvedImage extends ImageRef {
  format: DiskFormat;
  /** A template made from a kernel-booted instance boots the same kernel. */
  boot?: KernelBoot;
  /** A template's warm state (`template create --warm`). */
  warm?: WarmSource;
  /**
   * The image's own kernel, initramfs and command line, read out of it at import: a VM boots them directly
   * (faster than firmware + boot loader under TCG); a container has no use for them.
   */
  ownKernel?: KernelBoot;
}

export type ImageResolver = (nameOrPath: string) => Promise<ResolvedImage>;

export interface LaunchOptions {
  onPhase?: PhaseListener;
  /** Return once QEMU runs, without waiting for SSH and cloud-init. */
  noWait?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface LaunchResult {
  instance: Instance;
  valid: ValidLaunch;
  address: string | undefined;
  cloudInit: CloudInitResult | undefined;
}

/** virtnode's own SSH client key, made once per state directory and authorized in every launched guest. */
export async function clientKey(core: CoreContext): Promise<{ identityFile: string; publicKey: string }> {
  const dir = core.paths.sshDir;
  const identityFile = join(dir, 'id_ed25519');
  if (!existsSync(`${identityFile}.pub`)) {
    // Parallel first launches must not both make it: the lock name cannot clash with an instance (not a DNS label).
    const release = await acquireLock(core.db, '#ssh-client-key', 'generate the SSH client key', { waitMs: 60_000 });
    try {
      if (!existsSync(`${identityFile}.pub`)) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        rmSync(identityFile, { force: true }); // a half-made key from a crash
        await generateUserKey(dir);
      }
    } finally {
      release();
    }
  }
  return { identityFile, publicKey: readFileSync(`${identityFile}.pub`, 'utf8').trim() };
}

/**
 * The guest's network-config. With managed networks, the user-mode NIC (SSH only) gets its fixed slirp address
 * without a gateway, so the default route and DNS come from the managed network; a `--ip` NIC is static.
 */
export function seedNetwork(core: CoreContext, instance: Instance, userConfig: string | undefined): NetworkRequest {
  if (userConfig !== undefined) return { kind: 'user-config', text: userConfig };
  if (instance.nics.every((n) => n.network === USER_NETWORK)) return { kind: 'dhcp', macs: instance.nics.map((n) => n.mac) };
  return {
    kind: 'nics',
    nics: instance.nics.map((nic): NicNetworkConfig => {
      if (nic.network === USER_NETWORK) return { mac: nic.mac, address: `${USER_MODE_GUEST_ADDRESS}/24` };
      const network = core.networks.mustGet(nic.network);
      if (!nic.staticAddress || network.ipv4 === undefined) return { mac: nic.mac, dhcp: true };
      const prefix = network.ipv4.subnet.split('/')[1];
      return {
        mac: nic.mac,
        address: `${nic.address}/${prefix}`,
        ...(network.mode === 'nat' ? { gateway: network.ipv4.gateway } : {}),
        dns: [network.ipv4.gateway],
        search: [network.domain!],
      };
    }),
  };
}

interface Identity {
  instanceId: string;
  hostKeys: GeneratedKey[];
  /** The NoCloud seed as a read-only disk (--seed iso or vfat). */
  seedDisk?: InstanceSpec['disks'][number];
  /** Where the metadata responder serves the seed from instead (--seed http). */
  httpSeedDir?: string;
  /** A warm launch's seed, given to the loaded guest through its agent (no seed disk). */
  seedFiles?: Record<string, string>;
}

/** The NoCloud seed files of a new instance (meta-data, user-data, network-config), for a VM's seed or a container's rootfs. */
export function renderSeedFiles(service: InstanceService, valid: ValidLaunch, clientPublicKey: string, instanceId: string, hostKeys: GeneratedKey[]) {
  const seedRequest = {
    instanceId,
    hostname: valid.name,
    defaultUser: {
      name: valid.user,
      sshAuthorizedKeys: [clientPublicKey, ...valid.sshAuthorizedKeys],
      sudo: true,
      ...(valid.passwordHash === undefined ? {} : { passwordHash: valid.passwordHash }),
    },
    ...(valid.timezone === undefined ? {} : { timezone: valid.timezone }),
    hostKeys: hostKeys.map((k) => ({ type: k.type, privateKey: k.privateKey, publicKey: k.publicKey })),
    ...(valid.userData === undefined ? {} : { userData: valid.userData }),
    network: seedNetwork(service.core, service.repo.get(valid.name)!, valid.networkConfig),
  };
  const files = { 'meta-data': renderMetaData(seedRequest), 'user-data': renderUserData(seedRequest).text, 'network-config': renderNetworkConfig(seedRequest) };
  return { request: seedRequest, files };
}

/** The instance's identity in `dir`: a new instance-id, its SSH host keys, and the NoCloud seed that carries them. */
async function makeIdentity(service: InstanceService, valid: ValidLaunch, clientPublicKey: string, dir: string, warm: boolean): Promise<Identity> {
  const instanceId = `i-${crypto.randomUUID()}`;
  const hostKeys = await generateHostKeys(join(dir, 'ssh'), { comment: `${valid.name} host key (virtnode)` });
  const { request: seedRequest, files: seedFiles } = renderSeedFiles(service, valid, clientPublicKey, instanceId, hostKeys);
  if (warm) return { instanceId, hostKeys, seedFiles };
  if (valid.seedFormat === 'http') {
    const httpSeedDir = join(dir, 'seed');
    mkdirSync(httpSeedDir, { mode: 0o700 });
    const httpFiles = {
      ...seedFiles,
      'vendor-data': renderHttpSeedVendorData(METADATA_ADDRESS),
      [USER_DATA_AFTER_FIRST_BOOT]: renderUserData(seedRequest, { withSecrets: false }).text,
    };
    for (const [file, text] of Object.entries(httpFiles)) writeFileSync(join(httpSeedDir, file), text, { mode: 0o600 });
    return { instanceId, hostKeys, httpSeedDir };
  }
  if (valid.seedFormat === 'configdrive') {
    const drivePath = join(dir, 'configdrive.iso');
    await buildConfigDrive(drivePath, renderConfigDrive(seedRequest));
    return { instanceId, hostKeys, seedDisk: { id: 'seed', path: drivePath, format: 'raw', owned: true, readonly: true } };
  }
  const seedPath = join(dir, valid.seedFormat === 'iso' ? 'seed.iso' : 'seed.img');
  await buildSeed(seedPath, seedFiles, { format: valid.seedFormat });
  return { instanceId, hostKeys, seedDisk: { id: 'seed', path: seedPath, format: 'raw', owned: true, readonly: true } };
}

/**
 * Launch: image → linked-clone disk → identity (instance-id, host keys) → NoCloud seed → boot → IP → SSH →
 * cloud-init finished, each phase reported with its elapsed time. Everything before the boot is undone on failure.
 */
export async function launch(service: InstanceService, resolveImage: ImageResolver, request: LaunchRequest, options: LaunchOptions = {}): Promise<LaunchResult> {
  const started = Date.now();
  const phase = (p: Phase, detail: string) => options.onPhase?.(p, detail, Date.now() - started);
  const valid = validateLaunch(request);
  const image = await resolveImage(valid.image);
  const warm = chooseWarm(valid, image, request.diskLocation !== undefined);
  if (valid.tuning !== undefined) await service.checkTuning(valid.tuning, { memoryMiB: valid.memoryMiB, accel: valid.accel, nics: valid.nics });
  phase('image', `${image.name} (${image.format}, sha256 ${image.sha256.slice(0, 12)}${warm === undefined ? '' : ', warm state'})`);
  const key = await clientKey(service.core);

  const draft: InstanceSpec = {
    cpus: valid.cpus,
    memoryMiB: valid.memoryMiB,
    accel: valid.accel,
    disks: [],
    image: { name: image.name, sha256: image.sha256, path: image.path },
    ...(image.boot === undefined ? (image.ownKernel === undefined ? {} : { boot: image.ownKernel }) : { boot: image.boot }),
    // A warm launch runs with the saved state's knobs (its CPU model, say): the record says so (a live move needs it).
    ...(valid.tuning === undefined ? (warm?.model.tuning === undefined ? {} : { tuning: warm.model.tuning }) : { tuning: valid.tuning }),
  };
  let seedFiles: Record<string, string> | undefined;
  let instanceId = '';
  const defined = await service.define(valid.name, draft, { nics: valid.nics, ...(options.signal ? { signal: options.signal } : {}) }, async (dir, reverter) => {
    // In a pool: NAME.disk0.qcow2, a name no volume can have (volume names have no dot).
    const disk = request.diskLocation === undefined ? join(dir, 'disk0.qcow2') : `${request.diskLocation}/${valid.name}.disk0.qcow2`;
    if (request.diskLocation !== undefined) {
      if (await fileExists(disk)) throw new VirtnodeError('CONFLICT', `--pool: ${disk} already exists`, { field: '--pool', hint: 'remove it, or launch under another name' });
      reverter.add('remove the disk in the pool', () => removeFile(disk));
    }
    // The disk and the identity need nothing of each other, so they are made at the same time; the phases are
    // still reported in their order.
    // A linked clone: constant time whatever the image size; the image itself is never written.
    const backing = warm === undefined ? { path: image.path, format: image.format } : { path: warm.diskPath, format: 'qcow2' as const };
    const diskMade = createImage(disk, { format: 'qcow2', backing, ...(valid.diskSizeBytes === undefined ? {} : { sizeBytes: valid.diskSizeBytes }) });
    const identityMade = makeIdentity(service, valid, key.publicKey, dir, warm !== undefined);
    for (const made of [diskMade, identityMade]) made.catch(() => {}); // awaited below; a failure is not unhandled meanwhile
    try {
      await diskMade;
      failpoint('launch.after-disk');
      phase('disk', `${disk} (overlay on ${image.name}${valid.diskSizeBytes === undefined ? '' : `, ${valid.diskSizeBytes} bytes`})`);
      const identity = await identityMade;
      failpoint('launch.after-seed');
      seedFiles = identity.seedFiles;
      instanceId = identity.instanceId;
      phase('seed', `${warm === undefined ? SEED_DESCRIPTION[valid.seedFormat] : 'NoCloud, through the guest agent after the load'} (instance-id ${identity.instanceId})`);
      await delaypoint('launch.after-seed', options.signal);
      return {
        ...draft,
        instanceId: identity.instanceId,
        disks: [{ id: 'disk0', path: disk, format: 'qcow2', owned: true }, ...(identity.seedDisk === undefined ? [] : [identity.seedDisk])],
        ...(identity.httpSeedDir === undefined ? {} : { httpSeedDir: identity.httpSeedDir }),
        ssh: {
          user: valid.user,
          identityFile: key.identityFile,
          guestPort: SSH_GUEST_PORT,
          hostKeyFingerprints: identity.hostKeys.map((k) => k.fingerprint),
          hostPublicKeys: identity.hostKeys.map((k) => k.publicKey),
        },
      };
    } catch (e) {
      // Neither may still be writing in the directory when it is removed.
      await Promise.allSettled([diskMade, identityMade]);
      throw e;
    }
  });

  failpoint('launch.after-define');
  let instance = await service.start(defined.name, { ...(options.signal ? { signal: options.signal } : {}), ...(warm === undefined ? {} : { warm: { statePath: warm.statePath, model: warm.model } }) });
  const directBoot = image.boot === undefined && image.ownKernel !== undefined ? ", the image's own kernel booted directly" : '';
  phase('booting', warm === undefined ? `QEMU pid ${instance.pid}${directBoot}` : `QEMU pid ${instance.pid} loaded the warm state of ${image.name}`);
  const deadline = started + (options.timeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
  // A warm launch's first boot reports cloud-init's verdict itself: the SSH check only verifies the guest, and runs
  // beside the end of the first boot (from when its network is up, with the instance's own host key only).
  let reported: CloudInitResult | undefined;
  let sshChecked: Promise<void> | undefined;
  const sshCheck = new AbortController();
  let firstBootEnded = false;
  // Whether the guest's console shows its network is up (cloud-init's network stage, a login prompt, or the line a
  // warm first boot prints when its DHCP is done): SSH is probed only from then on, or once the agent says so.
  const consoleWatch = new ConsoleNetworkWatch(runtimePaths(service.paths.instanceDir(defined.name)).serialLog);
  if (warm !== undefined) {
    if (options.noWait !== true) {
      // Templates made before the first boot printed its line: from the end of the first boot.
      const mode = (): SshProbeMode => (firstBootEnded || consoleWatch.networkUp() ? 'hold' : 'wait');
      sshChecked = verifySshWhenUp(service.paths, instance, deadline, mode, options.signal === undefined ? sshCheck.signal : AbortSignal.any([options.signal, sshCheck.signal]));
      sshChecked.catch(() => {}); // awaited below; a failure is not unhandled meanwhile
    }
    try {
      // Before anything else sees the guest (but the strictly verified SSH check): until this is done it is the
      // template, not this instance.
      const first = await warmFirstBoot(runtimePaths(service.paths.instanceDir(defined.name)).guestAgent, { instanceId, seed: seedFiles ?? {}, clockFromJob: warm.model.clockFromJob === true, jobInFiles: warm.model.jobInFiles === true, ...(options.signal ? { signal: options.signal } : {}) });
      firstBootEnded = true;
      phase('booting', describeFirstBoot(first));
      reported = first.cloudInit;
    } catch (e) {
      sshCheck.abort();
      await sshChecked?.catch(() => {});
      throw e;
    }
  }
  if (options.noWait) return { instance, valid, address: undefined, cloudInit: undefined };
  failpoint('launch.after-boot');

  const port = instance.spec.ssh!.hostPort!;
  const sshNic = instance.nics.find((n) => n.network === USER_NETWORK);
  let address: string | undefined;
  let sshNicUp = false;
  let watching = true;
  const addressWatch = (async () => {
    while (watching && !(address !== undefined && sshNicUp) && Date.now() < deadline) {
      const view = await guestNetwork(service.paths, instance, sshNic?.mac);
      if (address === undefined && view.address !== undefined) {
        address = view.address;
        phase('ip', address);
      }
      sshNicUp ||= view.nicUp;
      if (!(address !== undefined && sshNicUp)) await sleep(ADDRESS_POLL_MS);
    }
  })();
  // A probe made before the network is up is a connection user-mode networking keeps trying to open after
  // virtnode has given up on it: it reaches sshd once the network is up, and each costs the guest a whole sshd start
  // (one to five per cold launch under TCG). Images that show neither signal are probed blind after a while.
  const waitingSince = Date.now();
  const probeMode = (): SshProbeMode => {
    if (sshNicUp || consoleWatch.networkUp()) return 'hold';
    return Date.now() - waitingSince < BLIND_PROBES_AFTER_MS ? 'wait' : 'blind';
  };
  try {
    if (sshChecked === undefined) await waitForSshBanner(port, deadline, { mode: probeMode, ...(options.signal === undefined ? {} : { signal: options.signal }) });
    else await sshChecked;
    instance = await service.get(defined.name);
    let cloudInit: CloudInitResult;
    if (reported === undefined) {
      phase('ssh', `127.0.0.1:${port}${sshChecked === undefined ? '' : ' (host key verified)'}`);
      cloudInit = await waitForCloudInit(service.paths, instance, Math.max(deadline - Date.now(), 1_000), options.signal);
    } else {
      phase('ssh', `127.0.0.1:${port} (host key verified)`);
      cloudInit = reported;
    }
    const detail = `${cloudInit.status}${cloudInit.datasource ? ` (datasource ${cloudInit.datasource})` : ''}${cloudInit.detail ? `: ${cloudInit.detail}` : ''}`;
    phase('cloud-init', detail);
    service.recordReadiness(defined.name, 'cloud-init', detail);
    if (instance.spec.httpSeedDir !== undefined) markFirstBootDone(instance.spec.httpSeedDir);
    const expected = valid.seedFormat === 'configdrive' ? 'ConfigDrive' : 'NoCloud';
    if (cloudInit.datasource !== undefined && !cloudInit.datasource.startsWith(expected)) {
      throw new VirtnodeError('COMMAND_FAILED', `cloud-init in ${defined.name} used DataSource${cloudInit.datasource}, not ${expected}: the seed was ignored`, {
        hint: 'the image may lack the isofs/vfat driver or have datasource_list set; see `virtnode logs NAME`',
      });
    }
    phase('ready', `ssh: virtnode shell ${defined.name}`);
    return { instance: await service.get(defined.name), valid, address, cloudInit };
  } catch (e) {
    if (e instanceof VirtnodeError && e.code === 'TIMEOUT') {
      throw new VirtnodeError('TIMEOUT', `${defined.name} is still provisioning after ${Math.round((Date.now() - started) / 1000)} s (it has not failed)`, {
        hint: `follow it with \`virtnode logs --follow ${defined.name}\`, then \`virtnode shell ${defined.name}\``,
      });
    }
    throw e;
  } finally {
    watching = false;
    sshCheck.abort();
    await Promise.allSettled([addressWatch, sshChecked]);
  }
}
