import { describe, expect, it } from 'vitest';
import { bootFileHere } from './extract.ts';

const sha = 'ab'.repeat(32);

describe('bootFileHere (an image kernel named by another host)', () => {
  it("maps another host's <sha256>.boot file under this host's images directory", () => {
    expect(bootFileHere('/var/lib/b/images', `/var/lib/a/images/${sha}.boot/vmlinuz`)).toBe(`/var/lib/b/images/${sha}.boot/vmlinuz`);
    expect(bootFileHere('/var/lib/b/images', `/var/lib/a/images/${sha}.boot/initrd.img`)).toBe(`/var/lib/b/images/${sha}.boot/initrd.img`);
  });

  it("leaves a user's own kernel alone", () => {
    expect(bootFileHere('/var/lib/b/images', '/srv/kernels/vmlinuz')).toBe('/srv/kernels/vmlinuz');
    expect(bootFileHere('/var/lib/b/images', '/srv/abc.boot/vmlinuz')).toBe('/srv/abc.boot/vmlinuz');
  });
});
