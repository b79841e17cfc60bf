import { describe, expect, it } from 'vitest';
import { directBootCmdline, ONE_PROCESS_CLOUD_INIT_FLAG, parseExtlinux } from './extlinux.ts';

const VIRTNODE_IMAGE = [
  'DEFAULT linux',
  'TIMEOUT 0',
  'PROMPT 0',
  'LABEL linux',
  '  LINUX /boot/vmlinuz-6.1.0-50-amd64',
  '  INITRD /boot/initrd.img-6.1.0-50-amd64',
  '  APPEND root=LABEL=root ro console=ttyS0,115200n8 net.ifnames=0',
  '',
].join('\n');

describe('parseExtlinux', () => {
  it("reads the entry of virtnode's own images", () => {
    expect(parseExtlinux(VIRTNODE_IMAGE, '/boot/extlinux/extlinux.conf')).toEqual({
      kernel: '/boot/vmlinuz-6.1.0-50-amd64',
      initrd: '/boot/initrd.img-6.1.0-50-amd64',
      append: 'root=LABEL=root ro console=ttyS0,115200n8 net.ifnames=0',
    });
  });

  it('takes the DEFAULT label, not the first, and makes relative paths absolute from the config directory', () => {
    const text = ['default second', 'label first', ' kernel /a', ' append root=/dev/sda1', 'label second', ' kernel ../vmlinuz', ' initrd ./initrd.img', ' append root=UUID=1234 quiet'].join('\n');
    expect(parseExtlinux(text, '/boot/extlinux/extlinux.conf')).toEqual({ kernel: '/boot/vmlinuz', initrd: '/boot/extlinux/initrd.img', append: 'root=UUID=1234 quiet' });
  });

  it('falls back to the first entry without DEFAULT; an entry without initrd has none', () => {
    expect(parseExtlinux('LABEL x\nKERNEL /vmlinuz\nAPPEND root=/dev/vda1\n', '/extlinux.conf')).toEqual({ kernel: '/vmlinuz', initrd: undefined, append: 'root=/dev/vda1' });
  });

  it('refuses what a direct boot cannot reproduce', () => {
    expect(parseExtlinux('', '/extlinux.conf')).toBeUndefined();
    expect(parseExtlinux('DEFAULT menu.c32\nLABEL a\nKERNEL menu.c32\nAPPEND root=/dev/vda1\n', '/extlinux.conf')).toBeUndefined();
    expect(parseExtlinux('LABEL a\nLINUX /vmlinuz\nINITRD /a.img,/b.img\nAPPEND root=/dev/vda1\n', '/extlinux.conf')).toBeUndefined();
    expect(parseExtlinux('LABEL a\nLINUX /vmlinuz\nAPPEND quiet\n', '/extlinux.conf')).toBeUndefined(); // no root=
    expect(parseExtlinux('LABEL a\nLINUX /boot/vm linuz\nAPPEND root=/dev/vda1\n', '/extlinux.conf')).toBeUndefined();
    expect(parseExtlinux('LABEL a\nLINUX /boot/"x";rm\nAPPEND root=/dev/vda1\n', '/extlinux.conf')).toBeUndefined();
  });
});

describe('directBootCmdline', () => {
  it("keeps the entry's own command line when it has the serial console", () => {
    expect(directBootCmdline('root=LABEL=root ro console=ttyS0,115200n8 net.ifnames=0')).toBe(`root=LABEL=root ro console=ttyS0,115200n8 net.ifnames=0 ${ONE_PROCESS_CLOUD_INIT_FLAG}`);
  });

  it('adds the serial console virtnode logs, and drops initrd= (QEMU passes -initrd)', () => {
    expect(directBootCmdline('root=UUID=1  initrd=/boot/initrd.img quiet')).toBe(`root=UUID=1 quiet console=ttyS0,115200n8 ${ONE_PROCESS_CLOUD_INIT_FLAG}`);
  });

  it('tells the image that virtnode boots it (one-process cloud-init), once, as a module parameter the kernel ignores', () => {
    expect(ONE_PROCESS_CLOUD_INIT_FLAG).toBe('virtnode.cloud_init=one_process');
    // A dotted word is a module parameter: the kernel neither complains nor passes it to init.
    expect(ONE_PROCESS_CLOUD_INIT_FLAG.split('=')[0]).toContain('.');
    const once = directBootCmdline(`root=LABEL=root ro ${ONE_PROCESS_CLOUD_INIT_FLAG} console=ttyS0`);
    expect(once.split(' ').filter((w) => w === ONE_PROCESS_CLOUD_INIT_FLAG)).toHaveLength(1);
    expect(directBootCmdline(directBootCmdline('root=LABEL=root'))).toBe(directBootCmdline('root=LABEL=root'));
  });
});
