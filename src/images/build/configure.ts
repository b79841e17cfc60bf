import { chmod, lstat, mkdir, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../exec/run.ts';
import { VirtnodeError } from '../../lib/errors.ts';
import { withSignal } from '../../lib/signal.ts';
import { installOneProcessCloudInit, COMPILE_GUEST_PROGRAMS } from './one-process-cloud-init.ts';
import type { ImageRecipe } from './recipes.ts';

const CHROOT_TIMEOUT_MS = 10 * 60_000;

/** The kernel and initrd that debootstrap installed, as paths inside the root (`/boot/...`). */
export interface InstalledKernel {
  version: string;
  kernel: string;
  initrd: string;
}

export interface ConfigureOptions {
  signal?: AbortSignal;
}

function chrootRun(root: string, argv: readonly string[], signal: AbortSignal | undefined): Promise<unknown> {
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', DEBIAN_FRONTEND: 'noninteractive', HOME: '/root' };
  return run(['chroot', root, ...argv], withSignal({ timeoutMs: CHROOT_TIMEOUT_MS, env }, signal));
}

export async function findKernel(root: string): Promise<InstalledKernel> {
  const boot = await readdir(join(root, 'boot'));
  const versions = boot
    .filter((f) => f.startsWith('vmlinuz-'))
    .map((f) => f.slice('vmlinuz-'.length))
    .sort();
  const version = versions.at(-1);
  if (version === undefined) throw new VirtnodeError('INTERNAL', 'debootstrap installed no kernel in /boot');
  return { version, kernel: `/boot/vmlinuz-${version}`, initrd: `/boot/initrd.img-${version}` };
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Turns a debootstrapped tree into a bootable cloud image: module index, initramfs, fstab by label, NoCloud
 * datasource, serial console, locale, EXTLINUX configuration.
 */
export async function configureRoot(root: string, recipe: ImageRecipe, options: ConfigureOptions = {}): Promise<InstalledKernel> {
  const { signal } = options;
  const k = await findKernel(root);
  // Module index for the installed kernel: without it modprobe finds neither isofs nor virtio drivers.
  await chrootRun(root, ['depmod', '-a', k.version], signal);
  // The initramfs with only the root disk's drivers (`MODULES=list`; `dep` would look at the build host's disks).
  await mkdir(join(root, 'etc/initramfs-tools/conf.d'), { recursive: true });
  await writeFile(join(root, 'etc/initramfs-tools/conf.d/virtnode.conf'), '# virtnode: only the modules listed in /etc/initramfs-tools/modules\nMODULES=list\n');
  await writeFile(join(root, 'etc/initramfs-tools/modules'), `# virtnode: the root disk's driver and filesystem, loaded at every boot\n${recipe.initramfsBootModules.join('\n')}\n`);
  await mkdir(join(root, 'etc/initramfs-tools/hooks'), { recursive: true });
  await writeFile(join(root, INITRAMFS_HOOK), initramfsHook(recipe), { mode: 0o755 });
  await chmod(join(root, INITRAMFS_HOOK), 0o755);
  const initrdExists = await exists(join(root, k.initrd));
  await chrootRun(root, ['update-initramfs', initrdExists ? '-u' : '-c', '-k', k.version], signal);

  // fsck pass 0: no fsck of the root at boot (neither in the initramfs nor systemd-fsck-root). ext4's journal
  // makes a crashed guest's filesystem consistent again on mount; the check cost seconds per boot under TCG.
  await writeFile(join(root, 'etc/fstab'), 'LABEL=root / ext4 defaults,errors=remount-ro 0 0\n');
  await writeFile(join(root, 'etc/hostname'), 'localhost\n');
  await writeFile(
    join(root, 'etc/hosts'),
    '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n',
  );
  // debootstrap copies the build host's resolver configuration; the guest gets its own from DHCP.
  await rm(join(root, 'etc/resolv.conf'), { force: true });
  await writeFile(join(root, 'etc/resolv.conf'), '');

  // ifupdown: cloud-init writes /etc/network/interfaces.d/50-cloud-init; make sure it is sourced.
  await mkdir(join(root, 'etc/network/interfaces.d'), { recursive: true });
  await writeFile(
    join(root, 'etc/network/interfaces'),
    '# Managed by cloud-init: see /etc/network/interfaces.d/\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n',
  );

  await mkdir(join(root, 'etc/cloud/cloud.cfg.d'), { recursive: true });
  await writeFile(
    join(root, 'etc/cloud/cloud.cfg.d/90-virtnode.cfg'),
    [
      '# virtnode: identity comes from a NoCloud seed (cidata volume) or an OpenStack config drive (config-2);',
      '# without either, boot with no datasource.',
      `datasource_list: [${recipe.datasources.join(', ')}]`,
      'datasource:',
      '  NoCloud:',
      '    fs_label: cidata',
      '',
    ].join('\n'),
  );

  await writeFile(join(root, 'etc/cloud/cloud.cfg.d/91-virtnode-modules.cfg'), cloudInitModulesConfig(recipe));
  // cloud-init restarts sshd when ssh_pwauth (false in every virtnode seed) changes the SSH configuration; with the
  // value already there it has nothing to change, and the first SSH login does not race a restart. Debian's
  // sshd_config includes sshd_config.d/*.conf, so cloud-init writes its file there (50-cloud-init.conf, 0600).
  const sshdDropIn = join(root, 'etc/ssh/sshd_config.d/50-cloud-init.conf');
  await mkdir(join(root, 'etc/ssh/sshd_config.d'), { recursive: true });
  await writeFile(sshdDropIn, 'PasswordAuthentication no\n', { mode: 0o600 });
  await chmod(sshdDropIn, 0o600);
  await maskUnits(root, recipe.maskedUnits);
  if (recipe.oneProcessCloudInit) {
    await installOneProcessCloudInit(root);
    await chrootRun(root, COMPILE_GUEST_PROGRAMS, signal);
  }

  // Serial console: a getty on ttyS0 even when the kernel console is elsewhere.
  const wants = join(root, 'etc/systemd/system/getty.target.wants');
  await mkdir(wants, { recursive: true });
  const serialGetty = join(wants, 'serial-getty@ttyS0.service');
  if (!(await exists(serialGetty))) await symlink('/lib/systemd/system/serial-getty@.service', serialGetty);

  // A UTF-8 locale is generated up front so cloud-init's locale module has nothing to build at first boot.
  await writeFile(join(root, 'etc/locale.gen'), 'en_US.UTF-8 UTF-8\n');
  await chrootRun(root, ['locale-gen'], signal);
  await writeFile(join(root, 'etc/default/locale'), 'LANG=en_US.UTF-8\n');

  await mkdir(join(root, 'boot/extlinux'), { recursive: true });
  await writeFile(
    join(root, 'boot/extlinux/extlinux.conf'),
    [
      'DEFAULT linux',
      'TIMEOUT 0',
      'PROMPT 0',
      'LABEL linux',
      `  LINUX ${k.kernel}`,
      `  INITRD ${k.initrd}`,
      `  APPEND root=LABEL=root ${recipe.kernelArgs.join(' ')}`,
      '',
    ].join('\n'),
  );
  await chrootRun(root, ['apt-get', 'clean'], signal);
  return k;
}

const INITRAMFS_HOOK = 'etc/initramfs-tools/hooks/virtnode-drivers';

/**
 * An initramfs-tools hook that puts the recipe's other drivers into the initramfs without loading them: udev
 * loads each one there when its hardware shows up (modules.alias), as it does in the running system.
 */
export function initramfsHook(recipe: ImageRecipe): string {
  const onDemand = recipe.initramfsModules.filter((m) => !recipe.initramfsBootModules.includes(m));
  return [
    '#!/bin/sh',
    '# virtnode: drivers a root disk or a seed CD-ROM can sit behind, loaded by udev only when that hardware is there.',
    'PREREQ=""',
    'prereqs() { echo "$PREREQ"; }',
    'case "$1" in prereqs) prereqs; exit 0 ;; esac',
    '. /usr/share/initramfs-tools/hook-functions',
    ...onDemand.map((m) => `manual_add_modules ${m}`),
    '',
  ].join('\n');
}

/** cloud.cfg.d's module lists; an empty stage is `[]` (a bare `key:` is null, which cloud-init's schema rejects). */
export function cloudInitModulesConfig(recipe: ImageRecipe): string {
  const list = (key: string, modules: readonly string[]) => (modules.length === 0 ? [`${key}: []`] : [`${key}:`, ...modules.map((m) => ` - ${m}`)]);
  const { init, config, final } = recipe.cloudInitModules;
  return [
    '# virtnode: only the modules a virtnode guest can use (no snaps, GRUB, other clouds\' agents, key dumps to the console).',
    ...list('cloud_init_modules', init),
    ...list('cloud_config_modules', config),
    ...list('cloud_final_modules', final),
    '',
  ].join('\n');
}

/** `systemctl mask` done by hand: a link to /dev/null in /etc/systemd/system, and no `.wants` link left to it. */
async function maskUnits(root: string, units: readonly string[]): Promise<void> {
  const etc = join(root, 'etc/systemd/system');
  await mkdir(etc, { recursive: true });
  for (const entry of await readdir(etc, { withFileTypes: true })) {
    if (!entry.isDirectory() || !entry.name.endsWith('.wants')) continue;
    for (const unit of units) await rm(join(etc, entry.name, unit), { force: true });
  }
  for (const unit of units) {
    await rm(join(etc, unit), { force: true });
    await symlink('/dev/null', join(etc, unit));
  }
}

/** Files removed by sealing, relative to the root; globs are expanded by hand (no shell). */
const SEAL_REMOVE = [
  'var/lib/dbus/machine-id',
  'var/lib/cloud',
  'var/lib/systemd/random-seed',
  'var/cache/debconf/config.dat-old',
  'var/cache/debconf/templates.dat-old',
  'etc/ssh/ssh_host_*',
  'var/lib/dhcp/*',
  'var/lib/apt/lists/*',
  'var/cache/apt/*.bin',
  'var/cache/apt/archives/*.deb',
  'root/.bash_history',
  'root/.lesshst',
  'root/.viminfo',
  'home/*/.bash_history',
  'tmp/*',
  'var/tmp/*',
] as const;

async function expand(root: string, pattern: string): Promise<string[]> {
  const star = pattern.indexOf('*');
  if (star < 0) return [join(root, pattern)];
  const slash = pattern.lastIndexOf('/', star);
  const dir = pattern.slice(0, slash);
  const end = pattern.indexOf('/', star);
  const segment = end < 0 ? pattern.slice(slash + 1) : pattern.slice(slash + 1, end);
  const rest = end < 0 ? '' : pattern.slice(end);
  const re = new RegExp(`^${segment.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  let names: string[];
  try {
    names = await readdir(join(root, dir));
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const name of names.filter((n) => re.test(n))) out.push(...(await expand(root, `${dir}/${name}${rest}`)));
  return out;
}

/** Empties every regular file below `dir` (logs), keeping directories so packages' log dirs stay valid. */
async function removeFilesBelow(dir: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await removeFilesBelow(p);
    else await rm(p, { force: true });
  }
}

/**
 * Makes the tree generic: every clone must get its own machine-id, SSH host keys, cloud-init state and DHCP
 * lease, and none may carry the build's logs, histories or package lists.
 */
export async function sealRoot(root: string): Promise<void> {
  // Exists and is empty: systemd fills it at first boot (and treats the boot as a first boot).
  await rm(join(root, 'etc/machine-id'), { force: true });
  await writeFile(join(root, 'etc/machine-id'), '');
  await chmod(join(root, 'etc/machine-id'), 0o444);
  for (const pattern of SEAL_REMOVE) {
    for (const path of await expand(root, pattern)) await rm(path, { recursive: true, force: true });
  }
  await removeFilesBelow(join(root, 'var/log'));
  await mkdir(join(root, 'var/lib/apt/lists/partial'), { recursive: true });
  await truncateIfExists(join(root, 'etc/resolv.conf'));
}

async function truncateIfExists(path: string): Promise<void> {
  if (await exists(path)) await truncate(path, 0);
}
