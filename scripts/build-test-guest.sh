#!/usr/bin/env bash
# Builds the tiny test guest used by the integration tests, from Debian packages
# only (linux-image-amd64, busybox-static, kmod, cpio, xz-utils):
#   OUT_DIR/vmlinuz        copy of the newest /boot/vmlinuz-*
#   OUT_DIR/vmlinux        the same kernel decompressed (ELF with a PVH entry note), when the
#                          kernel has CONFIG_PVH=y: boots without the kernel's own decompressor
#   OUT_DIR/initramfs.img  newc cpio, uncompressed: busybox, the modules below,
#                          /init (scripts/test-guest/init)
#   OUT_DIR/cmdline        kernel command line to boot it with
#   OUT_DIR/stamp          build key (kernel version + hashes of the inputs)
# Usage: scripts/build-test-guest.sh [OUT_DIR]   (default: <repo>/.cache/test-guest)
# Idempotent: exits at once when the outputs exist and the key is unchanged.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$repo/scripts/test-guest"
out=${1:-"$repo/.cache/test-guest"}
BUILDER=build-test-guest
# shellcheck source=lib/guest-initramfs.sh
. "$repo/scripts/lib/guest-initramfs.sh"

# cryptomgr.notests: the kernel self-tests each crypto algorithm as it registers it, at boot and when a
# module below registers one (the CRC modules of sd_mod). Under TCG the boot to the marker took 2.76 s of
# QEMU CPU with them, 2.49 s without (bench/test-guest-boot.ts, 8 interleaved pairs, each one faster).
readonly CMDLINE='console=ttyS0 quiet panic=-1 cryptomgr.notests'
# Modules the guest loads (with their dependencies, resolved at build time).
readonly MODULES=(
  virtio_pci virtio_blk virtio_net virtio_console virtio_scsi sd_mod sr_mod
  isofs vfat nls_cp437 nls_iso8859_1 nls_utf8 button evdev virtio_balloon
)

require_host_tools acpid cttyhack setsid insmod poweroff
find_kernel
key=$(build_key "$CMDLINE" "${BASH_SOURCE[0]}" "$src"/*)

start_build "$out" "$key"
mkdir -p "$root"/{root,etc/acpi,etc/test-guest}
chmod 700 "$root/root"
install_busybox "$root"
copy_modules "$root" "$root/etc/test-guest/modules" "${MODULES[@]}"

# /init and acpid configuration
install -m 0755 "$src/init" "$root/init"
install -m 0644 "$src/acpid.conf" "$root/etc/acpid.conf"
install -m 0755 "$src/power" "$root/etc/acpi/power"
echo test-guest >"$root/etc/hostname"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"

finish_build "$work" "$root" "$out" "$CMDLINE" "$key"
