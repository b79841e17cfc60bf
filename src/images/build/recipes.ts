/** What goes into an image: the Debian suite, the packages, the kernel command line. Part of the recipe key. */
export interface ImageRecipe {
  name: ImageName;
  suite: string;
  variant: 'minbase';
  packages: readonly string[];
  /** Kernel command line after `root=LABEL=root`. */
  kernelArgs: readonly string[];
  /**
   * cloud-init's datasource_list, in order: NoCloud (virtnode's cidata seed), ConfigDrive (`--seed configdrive`,
   * a config-2 volume), then None. Part of the recipe, so changing it changes the key and the image is rebuilt.
   */
  datasources: readonly string[];
  /**
   * Units masked in the image: boot-time and periodic jobs a short-lived cloud guest does not need, each of which
   * costs seconds under TCG (e2scrub_reap alone took a minute on a loaded host: bench/cold-boot-profile.ts).
   */
  maskedUnits: readonly string[];
  /**
   * cloud-init's module lists per stage (cloud.cfg's minus modules for other clouds, snaps, GRUB and console key
   * dumps). `config` is empty in virtnode's image: its modules run at the start of `final` instead, and
   * cloud-config.service (one more Python start, seconds under TCG) is masked.
   */
  cloudInitModules: { init: readonly string[]; config: readonly string[]; final: readonly string[] };
  /**
   * The initramfs holds only these modules (and what they depend on), not initramfs-tools' `MODULES=most`: the
   * drivers a root disk can sit behind (virtio-blk, virtio-scsi, NVMe, SATA, IDE) and ext4, and the CD-ROM driver:
   * a seed on a SATA CD-ROM (virt-install's `--cloud-init`) is then there as early as with `MODULES=most`, when
   * cloud-init's generator looks for a datasource. A smaller initramfs is unpacked and probed faster.
   */
  initramfsModules: readonly string[];
  /**
   * Of initramfsModules, the ones the initramfs loads at every boot: virtnode's root disk (virtio-blk) and ext4.
   * udev loads the others from the initramfs only for hardware that is there (an NVMe or virtio-scsi disk, a SATA
   * CD-ROM): under TCG each module loaded costs 0.2-0.4 s of a boot's critical path, and most machines have none.
   */
  initramfsBootModules: readonly string[];
  /**
   * When virtnode boots the image (its kernel directly, with `virtnode.cloud_init=one_process` on the command
   * line), cloud-init's stages run in one Python process (one-process-cloud-init.ts) instead of one per unit.
   * Booted by its boot loader the image runs cloud-init's own units.
   */
  oneProcessCloudInit: boolean;
}

export type ImageName = 'debian-12';

export const IMAGE_NAMES: readonly ImageName[] = ['debian-12'];

export const DEFAULT_DEBIAN_MIRROR = 'http://deb.debian.org/debian';

export const RECIPES: Record<ImageName, ImageRecipe> = {
  'debian-12': {
    name: 'debian-12',
    suite: 'bookworm',
    variant: 'minbase',
    packages: [
      'linux-image-amd64',
      // Without kmod (and depmod for the kernel) the guest cannot load isofs, and cloud-init ignores the seed.
      'kmod',
      'systemd-sysv',
      'udev',
      'dbus',
      'cloud-init',
      // debootstrap does not resolve virtual packages: python3-cryptography needs python3-cffi-backend-api-*.
      'python3-cffi-backend',
      'openssh-server',
      'qemu-guest-agent',
      'sudo',
      'tzdata',
      'locales',
      'ca-certificates',
      // cloud-init on Debian 12 renders its network config for ifupdown (ENI); dhclient does the DHCP.
      'ifupdown',
      'isc-dhcp-client',
      'iproute2',
      'netbase',
      'e2fsprogs',
      // growpart: cloud-init grows the root partition to fill a larger disk.
      'cloud-guest-utils',
      'procps',
    ],
    // No console=tty0: kernel messages go to the serial console only (drawing them on the emulated VGA costs time).
    kernelArgs: ['ro', 'console=ttyS0,115200n8', 'net.ifnames=0'],
    datasources: ['NoCloud', 'ConfigDrive', 'None'],
    maskedUnits: [
      'e2scrub_reap.service',
      'e2scrub_all.timer',
      'apt-daily.timer',
      'apt-daily-upgrade.timer',
      'dpkg-db-backup.timer',
      'man-db.timer',
      // Its modules run in cloud-final (cloudInitModules.config is empty).
      'cloud-config.service',
    ],
    cloudInitModules: {
      init: ['migrator', 'seed_random', 'bootcmd', 'write-files', 'growpart', 'resizefs', 'disk_setup', 'mounts', 'set_hostname', 'update_hostname', 'update_etc_hosts', 'ca-certs', 'rsyslog', 'users-groups', 'ssh'],
      config: [],
      final: [
        // cloud.cfg's config stage, first and in its order (apt-configure before package-update-upgrade-install).
        'locale',
        'set-passwords',
        'apt-configure',
        'ntp',
        'timezone',
        'runcmd',
        'package-update-upgrade-install',
        'write-files-deferred',
        'scripts-vendor',
        'scripts-per-once',
        'scripts-per-boot',
        'scripts-per-instance',
        'scripts-user',
        'ssh-authkey-fingerprints',
        'phone-home',
        'final-message',
        'power-state-change',
      ],
    },
    initramfsModules: ['virtio_pci', 'virtio_blk', 'virtio_scsi', 'sd_mod', 'sr_mod', 'nvme', 'ahci', 'ata_piix', 'ext4'],
    initramfsBootModules: ['virtio_pci', 'virtio_blk', 'ext4'],
    // One Python process for cloud-init's stages when virtnode boots the image (a cold boot's cloud-init units
    // were 19 s of CPU under TCG, much of it three Python starts and imports).
    oneProcessCloudInit: true,
  },
};

export function isImageName(name: string): name is ImageName {
  return (IMAGE_NAMES as readonly string[]).includes(name);
}
