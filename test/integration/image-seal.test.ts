import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.ts';
import { DEBIAN_IMAGE_PARTITION_OFFSET_BYTES, debianImage } from '../helpers/debian-image.ts';

/** Offline inspection of the built image: its raw form read with debugfs at the partition offset (no mounts). */
let dir = '';
let raw = '';
let fsSpec = '';

async function debugfs(request: string): Promise<string> {
  const { stdout, stderr } = await run(['debugfs', '-R', request, fsSpec], { timeoutMs: 30_000 });
  return stdout + stderr;
}

beforeAll(async () => {
  const image = debianImage();
  dir = await mkdtemp(join(tmpdir(), 'virtnode-image-seal-'));
  raw = join(dir, 'disk.raw');
  await run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', image, raw], { timeoutMs: 120_000 });
  fsSpec = `${raw}?offset=${DEBIAN_IMAGE_PARTITION_OFFSET_BYTES}`;
}, 180_000);

afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('built Debian image (offline)', () => {
  it('has an empty /etc/machine-id and no D-Bus machine-id', async () => {
    expect(await debugfs('stat /etc/machine-id')).toMatch(/Size: 0\b/);
    expect(await debugfs('stat /var/lib/dbus/machine-id')).toMatch(/File not found/);
  });

  it('carries no SSH host keys, cloud-init state, DHCP leases or histories', async () => {
    const ssh = await debugfs('ls /etc/ssh');
    expect(ssh).toContain('sshd_config');
    expect(ssh).not.toContain('ssh_host_');
    expect(await debugfs('stat /var/lib/cloud')).toMatch(/File not found/);
    expect(await debugfs('ls /var/lib/dhcp')).not.toMatch(/leases/);
    expect(await debugfs('stat /root/.bash_history')).toMatch(/File not found/);
  });

  it('has empty /tmp, emptied logs and no apt lists', async () => {
    const names = (listing: string): string[] =>
      listing
        .split('\n')
        .filter((l) => l.startsWith('/'))
        .map((l) => l.split('/')[5] ?? '')
        .filter((n) => n !== '.' && n !== '..' && n !== '');
    expect(names(await debugfs('ls -p /tmp'))).toEqual([]);
    const logFiles = (await debugfs('ls -p /var/log'))
      .split('\n')
      .filter((l) => l.startsWith('/') && /^\/\d+\/10/.test(l)); // regular files (mode 10xxxx)
    expect(logFiles).toEqual([]);
    expect(names(await debugfs('ls -p /var/lib/apt/lists'))).toEqual(['partial']);
  });

  it('boots the way it says: EXTLINUX, fstab and kernel by label, serial console, NoCloud then ConfigDrive', async () => {
    expect(await debugfs('ls /boot/extlinux')).toContain('ldlinux.sys');
    const conf = await debugfs('cat /boot/extlinux/extlinux.conf');
    expect(conf).toMatch(/LINUX \/boot\/vmlinuz-/);
    expect(conf).toMatch(/INITRD \/boot\/initrd\.img-/);
    expect(conf).toMatch(/root=LABEL=root .*console=ttyS0/);
    expect(await debugfs('cat /etc/fstab')).toMatch(/^LABEL=root \/ ext4 /m);
    expect(await debugfs('cat /etc/cloud/cloud.cfg.d/90-virtnode.cfg')).toMatch(/datasource_list: \[NoCloud, ConfigDrive, None\]/);
    expect(await debugfs('stats')).toMatch(/Filesystem volume name:\s+root/);
    const kver = /vmlinuz-(\S+)/.exec(conf)?.[1] ?? '';
    expect(await debugfs(`stat /lib/modules/${kver}/modules.dep`)).not.toMatch(/File not found/);
    expect(await debugfs(`stat /lib/modules/${kver}/kernel/fs/isofs/isofs.ko`)).not.toMatch(/File not found/);
  });

  it('has syslinux boot code and one bootable partition at 1 MiB', async () => {
    const fh = await open(raw, 'r');
    const mbr = Buffer.alloc(512);
    try {
      await fh.read(mbr, 0, 512, 0);
    } finally {
      await fh.close();
    }
    const code = await readFile('/usr/lib/syslinux/mbr/mbr.bin');
    expect(mbr.subarray(0, code.length).equals(code)).toBe(true);
    expect(mbr.readUInt16LE(510)).toBe(0xaa55);
    expect(mbr[446]).toBe(0x80); // bootable flag of the first entry
    expect(mbr.readUInt32LE(446 + 8)).toBe(DEBIAN_IMAGE_PARTITION_OFFSET_BYTES / 512);
  });
});
