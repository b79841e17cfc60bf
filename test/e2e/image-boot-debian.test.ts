import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOOT_USER, bootDebianImage, type BootedGuest } from '../helpers/debian-image.ts';

/**
 * Firmware boot of the built image under TCG: SeaBIOS → EXTLINUX → Debian kernel → systemd → cloud-init reading a
 * NoCloud seed, then SSH in over user-mode networking (inside the suite's network namespace) and look around.
 * The seed is the format virtnode does not write itself, a FAT volume labelled CIDATA (needs the vfat module; every
 * virtnode launch of the e2e tests reads an ISO seed), with an explicit network-config (v2, rendered for ifupdown),
 * on a disk larger than the image (growpart and resize2fs at first boot).
 */
const HOSTNAME = 'vn-test';
const GIB = 1024 ** 3;
const OVERLAY_SIZE_BYTES = 6 * GIB;
const BOOT_DEADLINE_MS = 300_000 + 120_000 + 60_000;

let guest: BootedGuest | undefined;
const ssh = (command: string): ReturnType<BootedGuest['ssh']> => {
  if (guest === undefined) throw new Error('guest did not boot');
  return guest.ssh(command);
};
const serial = (): Promise<string> => guest?.serial() ?? Promise.resolve('');

beforeAll(async () => {
  guest = await bootDebianImage({
    seedFormat: 'vfat',
    hostname: HOSTNAME,
    overlaySizeBytes: OVERLAY_SIZE_BYTES,
    networkConfig: ['version: 2', 'ethernets:', '  eth0:', '    dhcp4: true', ''].join('\n'),
    userData: [
      '#cloud-config',
      'users:',
      `  - name: ${BOOT_USER}`,
      '    groups: [sudo]',
      '    shell: /bin/bash',
      '    sudo: "ALL=(ALL) NOPASSWD:ALL"',
      '    lock_passwd: true',
      '    ssh_authorized_keys: ["{{SSH_KEY}}"]',
      'timezone: Europe/Berlin',
      'locale: en_US.UTF-8',
      'write_files:',
      '  - path: /etc/vn-marker',
      '    content: "write-files-ok\\n"',
      "    permissions: '0644'",
      'runcmd:',
      "  - [sh, -c, 'echo runcmd-ok > /var/tmp/vn-runcmd']",
      '',
    ].join('\n'),
  });
  console.log(`image-boot-debian (FAT seed) timings, ms since QEMU start: ${JSON.stringify(guest.timings)}`);
}, BOOT_DEADLINE_MS);

afterAll(async () => {
  await guest?.stop();
});

describe('Debian 12 image, firmware boot with a FAT (CIDATA) NoCloud seed, network-config and a bigger disk', () => {
  it('booted through EXTLINUX and the serial console works', async () => {
    const log = await serial();
    expect(log).toMatch(/Linux version/);
    expect(log).toMatch(/root=LABEL=root/);
    expect(log).toMatch(/login:/); // serial getty on ttyS0
  });

  it('took its hostname from the seed', async () => {
    expect((await ssh('hostname')).stdout.trim()).toBe(HOSTNAME);
  });

  it('cloud-init is done, without errors, from DataSourceNoCloud', async () => {
    const status = await ssh('cloud-init status --long');
    expect(status.stdout).toMatch(/status: done/);
    expect(status.stdout).toMatch(/DataSourceNoCloud/);
    const result = JSON.parse((await ssh('cat /run/cloud-init/result.json')).stdout) as {
      v1: { datasource: string; errors: unknown[] };
    };
    expect(result.v1.errors).toEqual([]);
    expect(result.v1.datasource).toMatch(/DataSourceNoCloud/);
  });

  it("booted by its boot loader (no virtnode flag), it ran cloud-init's own units, not the one-process ones", async () => {
    expect((await ssh('cat /proc/cmdline')).stdout).not.toContain('virtnode.cloud_init');
    for (const unit of ['cloud-init-local', 'cloud-init', 'cloud-final']) {
      expect((await ssh(`systemctl show -p ConditionResult,ActiveState ${unit}.service`)).stdout.trim().split('\n').sort()).toEqual(['ActiveState=active', 'ConditionResult=yes']);
    }
    for (const unit of ['virtnode-cloud-init', 'virtnode-cloud-init-network', 'virtnode-cloud-final']) {
      expect((await ssh(`systemctl show -p ConditionResult ${unit}.service`)).stdout.trim()).toBe('ConditionResult=no');
    }
  });

  it('got a fresh machine-id and its own SSH host keys', async () => {
    expect((await ssh('cat /etc/machine-id')).stdout.trim()).toMatch(/^[0-9a-f]{32}$/);
    expect((await ssh('ls /etc/ssh')).stdout).toMatch(/ssh_host_ed25519_key\.pub/);
  });

  it('ran write_files and runcmd, applied timezone and locale, grants sudo', async () => {
    expect((await ssh('cat /etc/vn-marker')).stdout).toBe('write-files-ok\n');
    expect((await ssh('cat /var/tmp/vn-runcmd')).stdout).toBe('runcmd-ok\n');
    expect((await ssh('readlink /etc/localtime')).stdout).toMatch(/Europe\/Berlin/);
    expect((await ssh('cat /etc/default/locale')).stdout).toMatch(/en_US\.UTF-8/);
    expect((await ssh('sudo -n id -u')).stdout.trim()).toBe('0');
  });

  it('booted with no failed units; sshd active; qemu-ga installed (it starts when a guest-agent port exists)', async () => {
    const failed = await ssh('systemctl --failed --no-legend --plain');
    expect(failed.stdout.trim()).toBe('');
    expect((await ssh('systemctl is-active ssh')).stdout.trim()).toBe('active');
    expect((await ssh('ls /usr/sbin/qemu-ga')).stdout.trim()).toBe('/usr/sbin/qemu-ga');
  });

  it('rendered the network-config for ifupdown and brought the virtio NIC up with DHCP', async () => {
    expect((await ssh('cat /etc/network/interfaces.d/50-cloud-init')).stdout).toMatch(/iface eth0 inet dhcp/);
    const addr = await ssh('ip -4 -o addr show scope global');
    expect(addr.stdout).toMatch(/inet 10\.0\.2\.15\//);
    expect((await ssh('ip route show default')).stdout).toMatch(/default via 10\.0\.2\.2/);
  });

  it('grew the root partition and filesystem to the disk', async () => {
    const size = Number((await ssh('df -B1 --output=size /')).stdout.split('\n')[1]?.trim());
    expect(size).toBeGreaterThan(5.5 * GIB);
  });
});
