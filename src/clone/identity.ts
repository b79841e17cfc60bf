import { join } from 'node:path';
import type { CoreContext } from '../core/context.ts';
import { renderMetaData, renderNetworkConfig, renderUserData } from '../cloudinit/render.ts';
import { buildSeed, type SeedFiles } from '../cloudinit/seed.ts';
import { generateHostKeys } from '../cloudinit/ssh-host-keys.ts';
import { clientKey, seedNetwork } from '../instances/launch.ts';
import type { DiskSpec, InstanceSpec, SshAccess } from '../instances/model.ts';

const SSH_GUEST_PORT = 22;

export interface CloneIdentity {
  instanceId: string;
  seedDisk: DiskSpec;
  ssh: SshAccess | undefined;
}

/**
 * A clone's own identity, made by virtnode as `launch` makes it: a new cloud-init instance-id, the hostname (its
 * name), new SSH host keys (injected through the seed, so its known_hosts entry is right before first contact)
 * and DHCP on its own MACs. The MACs, UUID and SMBIOS UUID come from `define`. With a new instance-id, cloud-init
 * runs its per-instance modules again on the sealed disk; systemd fills the emptied machine-id. The network-config
 * is what `launch` writes for the same NICs (DHCP on managed networks, where the clone's new MAC has its own lease).
 */
export async function makeCloneIdentity(
  core: CoreContext,
  dir: string,
  name: string,
  options: { user: string | undefined; signal?: AbortSignal },
): Promise<CloneIdentity> {
  const seed = await makeCloneSeed(core, dir, name, options);
  const seedPath = join(dir, 'seed.iso');
  await buildSeed(seedPath, seed.files, { format: 'iso' });
  return { instanceId: seed.instanceId, seedDisk: { id: 'seed', path: seedPath, format: 'raw', owned: true, readonly: true }, ssh: seed.ssh };
}

/** The NoCloud files of a clone's new identity (host keys made in `dir`/ssh), and its SSH access. */
export async function makeCloneSeed(
  core: CoreContext,
  dir: string,
  name: string,
  options: { user: string | undefined; signal?: AbortSignal },
): Promise<{ instanceId: string; files: SeedFiles; ssh: SshAccess | undefined; hostPublicKeys: string[] }> {
  const instanceId = `i-${crypto.randomUUID()}`;
  const hostKeys = await generateHostKeys(join(dir, 'ssh'), { comment: `${name} host key (virtnode)`, ...(options.signal ? { signal: options.signal } : {}) });
  const current = core.repos.instances.get(name)!;
  const user = options.user ?? 'virtnode';
  const key = await clientKey(core);
  const request = {
    instanceId,
    hostname: name,
    defaultUser: { name: user, sshAuthorizedKeys: [key.publicKey], sudo: true },
    hostKeys: hostKeys.map((k) => ({ type: k.type, privateKey: k.privateKey, publicKey: k.publicKey })),
    network: seedNetwork(core, current, undefined),
  };
  const files = { 'meta-data': renderMetaData(request), 'user-data': renderUserData(request).text, 'network-config': renderNetworkConfig(request) };
  const ssh: SshAccess | undefined =
    options.user === undefined
      ? undefined
      : {
          user,
          identityFile: key.identityFile,
          guestPort: SSH_GUEST_PORT,
          hostKeyFingerprints: hostKeys.map((k) => k.fingerprint),
          hostPublicKeys: hostKeys.map((k) => k.publicKey),
        };
  return { instanceId, files, ssh, hostPublicKeys: hostKeys.map((k) => k.publicKey) };
}

/** The spec fields a clone takes over from its source (everything but identity and disks). */
export function inheritedSpec(source: Pick<InstanceSpec, 'cpus' | 'memoryMiB' | 'accel' | 'boot' | 'tuning'>): InstanceSpec {
  return {
    cpus: source.cpus,
    memoryMiB: source.memoryMiB,
    accel: source.accel,
    disks: [],
    ...(source.boot === undefined ? {} : { boot: source.boot }),
    // Tuning is how the machine runs, not who it is: a clone runs like its source.
    ...(source.tuning === undefined ? {} : { tuning: source.tuning }),
  };
}
