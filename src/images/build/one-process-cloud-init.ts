import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { installFile } from '../../lib/install-paths.ts';
import { ONE_PROCESS_CLOUD_INIT_FLAG } from '../boot/extlinux.ts';

/**
 * cloud-init's stages in one Python process at a cold boot, when virtnode boots the image (its kernel command
 * line has ONE_PROCESS_CLOUD_INIT_FLAG): virtnode-cloud-init.service runs the local stage where
 * cloud-init-local.service would and stays; virtnode-cloud-init-network.service and virtnode-cloud-final.service,
 * ordered as cloud-init.service and cloud-final.service are, ask it for their stages over a FIFO
 * (src/instances/cold-first-boot.py). cloud-init's own units are skipped under the flag, and only then: booted
 * by its boot loader (virt-install, by hand) the image runs them as always.
 */

/** Where the programs go in the image (cold-first-boot.py imports first_boot_common.py and first_boot_caches.py from its own directory). */
export const GUEST_PROGRAM_DIR = '/usr/lib/virtnode';
/** Repository files copied into GUEST_PROGRAM_DIR, under their own names. */
export const GUEST_PROGRAMS = ['src/instances/cold-first-boot.py', 'src/instances/first_boot_common.py', 'src/instances/first_boot_caches.py'] as const;

/**
 * Compiles the programs' modules when the image is built (run in its root), as Debian compiles its packages'
 * modules at install: otherwise every instance's first boot compiles them again under emulation.
 */
export const COMPILE_GUEST_PROGRAMS = ['python3', '-m', 'compileall', '-q', GUEST_PROGRAM_DIR] as const;

export const ONE_PROCESS_UNITS = ['virtnode-cloud-init.service', 'virtnode-cloud-init-network.service', 'virtnode-cloud-final.service'] as const;
/** cloud-init's own units, each given `ConditionKernelCommandLine=!FLAG` (cloud-config.service too, masked or not). */
export const CLOUD_INIT_UNITS = ['cloud-init-local.service', 'cloud-init.service', 'cloud-config.service', 'cloud-final.service'] as const;

const RUN = '/run/virtnode-cloud-init';
const FLAG = `ConditionKernelCommandLine=${ONE_PROCESS_CLOUD_INIT_FLAG}`;

/**
 * An asking unit's program: names its stage, waits for its exit status, exits with it (dash, no Python start).
 * `$$` is systemd's escape for the shell's `$`.
 */
function ask(stage: string): string {
  return `ExecStart=/bin/sh -c 'echo ${stage} > ${RUN}/request && read code < ${RUN}/${stage}.done && exit "$$code"'`;
}

/** The [Service] and [Install] sections of a unit that asks the running process for `stage`. */
function askingService(stage: string): string[] {
  return ['[Service]', 'Type=oneshot', ask(stage), 'RemainAfterExit=yes', 'TimeoutSec=0', 'StandardOutput=journal+console', '', '[Install]', 'WantedBy=cloud-init.target', ''];
}

/** The units' text, by file name. Orderings copied from cloud-init 22.4's units (Debian 12) they stand in for. */
export function oneProcessUnits(): Record<(typeof ONE_PROCESS_UNITS)[number], string> {
  return {
    'virtnode-cloud-init.service': [
      '# virtnode: cloud-init in one Python process when virtnode boots this image; here: cloud-init-local.service\'s place.',
      '[Unit]',
      'Description=cloud-init in one process (local stage; network and final when their units ask)',
      'DefaultDependencies=no',
      FLAG,
      'Wants=network-pre.target',
      'After=hv_kvp_daemon.service systemd-remount-fs.service',
      'Before=NetworkManager.service network-pre.target shutdown.target sysinit.target',
      'Conflicts=shutdown.target',
      'RequiresMountsFor=/var/lib/cloud',
      '',
      '[Service]',
      // READY=1 after the local stage; it runs on, serving the network and final stages, then exits.
      'Type=notify',
      `ExecStart=/usr/bin/python3 ${GUEST_PROGRAM_DIR}/cold-first-boot.py`,
      'RemainAfterExit=yes',
      'TimeoutSec=0',
      // As cloud-final.service: what the user's scripts start in the background outlives the stage.
      'KillMode=process',
      'TasksMax=infinity',
      'StandardOutput=journal+console',
      '',
      '[Install]',
      'WantedBy=cloud-init.target',
      '',
    ].join('\n'),
    'virtnode-cloud-init-network.service': [
      "# virtnode: cloud-init.service's place when virtnode boots this image; the stage runs in virtnode-cloud-init.service.",
      '[Unit]',
      'Description=cloud-init network stage (in virtnode-cloud-init.service)',
      'DefaultDependencies=no',
      FLAG,
      'BindsTo=virtnode-cloud-init.service',
      'After=virtnode-cloud-init.service',
      'Wants=sshd-keygen.service sshd.service',
      'After=systemd-networkd-wait-online.service networking.service',
      'Before=network-online.target chronyd.service sshd-keygen.service sshd.service sysinit.target shutdown.target systemd-user-sessions.service',
      'Conflicts=shutdown.target',
      '',
      ...askingService('network'),
    ].join('\n'),
    'virtnode-cloud-final.service': [
      "# virtnode: cloud-final.service's place when virtnode boots this image; the stage runs in virtnode-cloud-init.service.",
      '[Unit]',
      'Description=cloud-init final stage (in virtnode-cloud-init.service)',
      FLAG,
      'BindsTo=virtnode-cloud-init.service',
      'After=virtnode-cloud-init.service virtnode-cloud-init-network.service',
      'After=network-online.target cloud-config.service rc-local.service',
      'After=multi-user.target',
      'Before=apt-daily.service',
      'Wants=network-online.target',
      '',
      ...askingService('final'),
    ].join('\n'),
  };
}

/** The drop-in that skips one of cloud-init's own units when virtnode boots the image. */
export const SKIP_UNDER_FLAG = `# virtnode: cloud-init runs in one process (virtnode-cloud-init.service) when virtnode boots this image.\n[Unit]\nConditionKernelCommandLine=!${ONE_PROCESS_CLOUD_INIT_FLAG}\n`;

/** A hash of the guest programs: part of the recipe key, so an image is rebuilt when they change. */
export function guestProgramsDigest(): string {
  const hash = createHash('sha256');
  for (const file of GUEST_PROGRAMS) hash.update(file).update('\0').update(readFileSync(installFile(file)));
  return hash.digest('hex');
}

/** Installs the programs, the units (enabled in cloud-init.target) and the drop-ins into the image's root. */
export async function installOneProcessCloudInit(root: string): Promise<void> {
  const programs = join(root, GUEST_PROGRAM_DIR.slice(1));
  await mkdir(programs, { recursive: true });
  for (const file of GUEST_PROGRAMS) {
    const target = join(programs, file.slice(file.lastIndexOf('/') + 1));
    await writeFile(target, readFileSync(installFile(file)));
    await chmod(target, 0o644);
  }
  const etc = join(root, 'etc/systemd/system');
  const wants = join(etc, 'cloud-init.target.wants');
  await mkdir(wants, { recursive: true });
  for (const [name, text] of Object.entries(oneProcessUnits())) {
    await writeFile(join(etc, name), text);
    await symlink(`/etc/systemd/system/${name}`, join(wants, name));
  }
  for (const unit of CLOUD_INIT_UNITS) {
    await mkdir(join(etc, `${unit}.d`), { recursive: true });
    await writeFile(join(etc, `${unit}.d`, 'virtnode-one-process.conf'), SKIP_UNDER_FLAG);
  }
}
