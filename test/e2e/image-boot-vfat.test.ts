import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOT_USER, bootDebianImage, type BootedGuest } from '../helpers/debian-image.ts';

/**
 * The same image with the other seed format cloud-init accepts (a FAT volume labelled CIDATA, needs the vfat
 * module), an explicit network-config (v2, rendered for ifupdown) and a disk larger than the image (growpart and
 * resize2fs at first boot).
 */
const HOSTNAME = 'vn-vfat';
const GIB = 1024 ** 3;
const OVERLAY_SIZE_BYTES = 6 * GIB;
const BOOT_DEADLINE_MS = 300_000 + 120_000 + 60_000;

let guest: BootedGuest | undefined;
const ssh = (command: string): ReturnType<BootedGuest['ssh']> => {
  if (guest === undefined) throw new Error('guest did not boot');
  return guest.ssh(command);
};

beforeAll(async () => {
  guest = await bootDebianImage({
    seedFormat: 'vfat',
    hostname: HOSTNAME,
    overlaySizeBytes: OVERLAY_SIZE_BYTES,
    userData: [
      '#cloud-config',
      'users:',
      `  - name: ${BOOT_USER}`,
      '    lock_passwd: true',
      '    ssh_authorized_keys: ["{{SSH_KEY}}"]',
      '',
    ].join('\n'),
    networkConfig: ['version: 2', 'ethernets:', '  eth0:', '    dhcp4: true', ''].join('\n'),
  });
  console.log(`image-boot-vfat timings, ms since QEMU start: ${JSON.stringify(guest.timings)}`);
}, BOOT_DEADLINE_MS);

afterAll(async () => {
  await guest?.stop();
});

describe('Debian 12 image with a FAT (CIDATA) seed, network-config and a bigger disk', () => {
  it('cloud-init read the FAT seed: hostname, done without errors, NoCloud', async () => {
    expect((await ssh('hostname')).stdout.trim()).toBe(HOSTNAME);
    const status = await ssh('cloud-init status --long');
    expect(status.stdout).toMatch(/status: done/);
    expect(status.stdout).toMatch(/DataSourceNoCloud/);
  });

  it('rendered the network-config for ifupdown and got a DHCP lease', async () => {
    expect((await ssh('cat /etc/network/interfaces.d/50-cloud-init')).stdout).toMatch(/iface eth0 inet dhcp/);
    expect((await ssh('ip -4 -o addr show dev eth0')).stdout).toMatch(/inet 10\.0\.2\.15\//);
  });

  it('grew the root partition and filesystem to the disk', async () => {
    const size = Number((await ssh('df -B1 --output=size /')).stdout.split('\n')[1]?.trim());
    expect(size).toBeGreaterThan(5.5 * GIB);
  });
});
