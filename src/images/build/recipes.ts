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
    kernelArgs: ['ro', 'console=tty0', 'console=ttyS0,115200n8', 'net.ifnames=0'],
    datasources: ['NoCloud', 'ConfigDrive', 'None'],
  },
};

export function isImageName(name: string): name is ImageName {
  return (IMAGE_NAMES as readonly string[]).includes(name);
}
