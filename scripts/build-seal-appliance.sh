#!/usr/bin/env bash
# Builds virtnode's sealing appliance, the tiny VM that seals a template's or clone's disk offline (like the
# libguestfs appliance behind virt-sysprep, but a busybox initramfs that boots in seconds), from Debian
# packages only (linux-image-amd64, busybox-static, kmod, cpio):
#   OUT_DIR/vmlinuz        copy of the newest /boot/vmlinuz-*
#   OUT_DIR/vmlinux        the same kernel decompressed (PVH-bootable ELF) when possible: skips the decompressor
#   OUT_DIR/initramfs.img  busybox, virtio and ext4/xfs modules, /init (scripts/seal-appliance/init) and
#                          /seal.sh (src/templates/seal.sh, the same script the guest agent runs)
#   OUT_DIR/cmdline        kernel command line
#   OUT_DIR/stamp          build key (kernel version + hashes of the inputs)
# Usage: scripts/build-seal-appliance.sh OUT_DIR. Idempotent and cheap when nothing changed (virtnode runs it
# before each offline seal, so the appliance always carries the current sealing script).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: build-seal-appliance.sh OUT_DIR}
BUILDER=build-seal-appliance
# shellcheck source=lib/guest-initramfs.sh
. "$repo/scripts/lib/guest-initramfs.sh"

readonly CMDLINE='console=ttyS0 quiet panic=-1'
readonly MODULES=(virtio_pci virtio_blk crc32c_generic ext4 xfs)

require_host_tools insmod mount umount poweroff find usleep
find_kernel
key=$(build_key "$CMDLINE" "${BASH_SOURCE[0]}" "$repo/scripts/seal-appliance/init" "$repo/src/templates/seal.sh")

start_build "$out" "$key"
mkdir -p "$root"/{mnt/root,etc/seal-appliance}
install_busybox "$root"
copy_modules "$root" "$root/etc/seal-appliance/modules" "${MODULES[@]}"

install -m 0755 "$repo/scripts/seal-appliance/init" "$root/init"
install -m 0755 "$repo/src/templates/seal.sh" "$root/seal.sh"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"

finish_build "$work" "$root" "$out" "$CMDLINE" "$key"
