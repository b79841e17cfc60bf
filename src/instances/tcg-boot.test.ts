import { describe, expect, it } from 'vitest';
import { ONE_PROCESS_CLOUD_INIT_FLAG } from '../images/boot/extlinux.ts';
import { bootCmdlineFor, TCG_KERNEL_ARGS, TCG_UNUSED_DRIVERS } from './tcg-boot.ts';

const image = `root=LABEL=root ro console=ttyS0,115200n8 ${ONE_PROCESS_CLOUD_INIT_FLAG}`;

describe('the boot command line under TCG', () => {
  it("an image's command line tells kmod to leave the unused drivers alone under TCG, and turns the mitigations off", () => {
    expect(bootCmdlineFor(image, 'tcg')).toBe(`${image} mitigations=off modprobe.blacklist=${TCG_UNUSED_DRIVERS.join(',')}`);
    expect(TCG_KERNEL_ARGS).toEqual(['mitigations=off']);
    expect(TCG_UNUSED_DRIVERS).toEqual(expect.arrayContaining(['kvm_amd', 'kvm_intel', 'bochs']));
  });

  it('keeps the drivers a guest needs: virtio, the filesystems, the power button and its input events', () => {
    for (const needed of ['virtio_net', 'virtio_blk', 'virtio_console', 'virtio_balloon', 'virtio_rng', 'isofs', 'vfat', 'ext4', 'button', 'evdev', 'psmouse']) {
      expect(TCG_UNUSED_DRIVERS).not.toContain(needed);
    }
  });

  it('leaves KVM boots, command lines the user wrote, and what the image says itself, as they are', () => {
    expect(bootCmdlineFor(image, 'kvm')).toBe(image);
    expect(bootCmdlineFor('root=/dev/vda console=ttyS0', 'tcg')).toBe('root=/dev/vda console=ttyS0');
    const own = `${image} modprobe.blacklist=floppy mitigations=auto`;
    expect(bootCmdlineFor(own, 'tcg')).toBe(own);
  });
});
