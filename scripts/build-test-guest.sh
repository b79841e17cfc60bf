#!/usr/bin/env bash
# Builds the tiny test guest used by the integration tests, from Debian packages
# only (linux-image-amd64, busybox-static, kmod, cpio, xz-utils):
#   OUT_DIR/vmlinuz        copy of the newest /boot/vmlinuz-*
#   OUT_DIR/vmlinux        the same kernel decompressed (ELF with a PVH entry note), when the
#                          kernel has CONFIG_PVH=y: QEMU boots it with -kernel without running
#                          the kernel's own decompressor, which takes about 3.5 s under TCG
#   OUT_DIR/initramfs.img  newc cpio, uncompressed (unpacking gzip under TCG costs about 0.1 s):
#                          busybox, the modules below, /init (scripts/test-guest/init)
#   OUT_DIR/cmdline        kernel command line to boot it with
#   OUT_DIR/stamp          build key (kernel version + hashes of the inputs)
# Usage: scripts/build-test-guest.sh [OUT_DIR]   (default: <repo>/.cache/test-guest)
# Idempotent: exits at once when the outputs exist and the key is unchanged.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$repo/scripts/test-guest"
out=${1:-"$repo/.cache/test-guest"}

readonly CMDLINE='console=ttyS0 quiet panic=-1'
# Modules the guest loads (with their dependencies, resolved at build time).
readonly MODULES=(
  virtio_pci virtio_blk virtio_net virtio_console virtio_scsi sd_mod sr_mod
  isofs vfat nls_cp437 nls_iso8859_1 nls_utf8 button evdev
)
# CPU-specific variants (crc32c-intel, crct10dif-pclmul) fail on TCG's CPU model and
# cost about 80 ms each to try; the generic versions that modprobe also lists suffice.
readonly SKIP_MODULE_DIRS=(kernel/arch/x86/crypto/)

die() {
  echo "build-test-guest: $*" >&2
  exit 1
}

# extract_vmlinux BZIMAGE OUT: the ELF kernel inside a bzImage, if it is PVH-bootable.
extract_vmlinux() {
  local image=$1 dest=$2 magic offset tool
  local -a decompress
  grep -qx 'CONFIG_PVH=y' "/boot/config-$kver" 2>/dev/null || return 1
  # The payload is followed by other data: stop after one stream and ignore the exit status, then check the result.
  for magic in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08\x00'; do
    tool=${magic%%:*}
    command -v "$tool" >/dev/null || continue
    case "$tool" in
    xz) decompress=(xz -dcq --single-stream) ;;
    *) decompress=("$tool" -dcq) ;;
    esac
    while read -r offset; do
      { tail -c "+$((offset + 1))" "$image" | "${decompress[@]}" >"$dest"; } 2>/dev/null || true
      if [[ "$(head -c 4 "$dest" | od -An -tx1 | tr -d ' ')" == 7f454c46 ]]; then
        return 0
      fi
    done < <(LC_ALL=C grep -obUaP "${magic#*:}" "$image" | cut -d: -f1)
  done
  return 1
}

for tool in cpio modprobe sha256sum flock; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install -y cpio kmod coreutils util-linux)"
done
busybox=/bin/busybox
[[ -x "$busybox" ]] || die "missing $busybox (apt-get install -y busybox-static)"
applets=$("$busybox" --list)
for applet in acpid cttyhack setsid insmod poweroff; do
  grep -qx "$applet" <<<"$applets" || die "$busybox has no $applet applet (need busybox-static)"
done

kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -n 1)
[[ -n "$kernel" ]] || die "no /boot/vmlinuz-* (apt-get install -y linux-image-amd64)"
kver=${kernel#vmlinuz-}
moddir="/lib/modules/$kver"
[[ -d "$moddir" ]] || die "no $moddir for kernel $kver"

key=$(
  {
    echo "kver=$kver"
    echo "cmdline=$CMDLINE"
    sha256sum "${BASH_SOURCE[0]}" "$src"/* "$busybox" | cut -d' ' -f1
    stat -c '%s %Y' "/boot/$kernel" "$moddir/modules.dep"
  } | sha256sum | cut -d' ' -f1
)

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [[ -f "$out/stamp" && "$(cat "$out/stamp")" == "$key" &&
  -f "$out/vmlinuz" && -f "$out/initramfs.img" && -f "$out/cmdline" ]]; then
  exit 0
fi

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,root,etc/acpi,etc/test-guest}
chmod 1777 "$root/tmp"
chmod 700 "$root/root"

# busybox and its applets
cp "$busybox" "$root/bin/busybox"
while read -r applet; do
  [[ "$applet" == busybox ]] && continue
  ln -s busybox "$root/bin/$applet"
done <<<"$applets"
ln -s bin/busybox "$root/sbin/busybox"

# modules: dependency order from modprobe, each file once, decompressed if needed
declare -A seen=()
list="$root/etc/test-guest/modules"
: >"$list"
for mod in "${MODULES[@]}"; do
  deps=$(modprobe -S "$kver" --show-depends "$mod" 2>&1) || die "modprobe --show-depends $mod: $deps"
  while read -r verb path _; do
    [[ "$verb" == insmod ]] || continue
    [[ -z "${seen[$path]:-}" ]] || continue
    seen[$path]=1
    rel=${path#/lib/modules/"$kver"/}
    for skip in "${SKIP_MODULE_DIRS[@]}"; do
      [[ "$rel" != "$skip"* ]] || continue 2
    done
    dest="$root/lib/modules/$kver/$rel"
    mkdir -p "$(dirname "$dest")"
    case "$path" in
    *.ko) cp "$path" "$dest" ;;
    *.ko.xz) dest=${dest%.xz} && xz -dc "$path" >"$dest" ;;
    *.ko.zst) dest=${dest%.zst} && zstd -qdc "$path" >"$dest" ;;
    *.ko.gz) dest=${dest%.gz} && gzip -dc "$path" >"$dest" ;;
    *) die "unexpected module file $path" ;;
    esac
    echo "${dest#"$root"}" >>"$list"
  done <<<"$deps"
done

# /init and acpid configuration
install -m 0755 "$src/init" "$root/init"
install -m 0644 "$src/acpid.conf" "$root/etc/acpid.conf"
install -m 0755 "$src/power" "$root/etc/acpi/power"
echo test-guest >"$root/etc/hostname"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
if [[ $EUID -eq 0 ]]; then
  mknod -m 600 "$root/dev/console" c 5 1
fi

(cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  cpio --null --create --format=newc --owner=0:0 --quiet) >"$work/initramfs.img"
cp "/boot/$kernel" "$work/vmlinuz"
extract_vmlinux "/boot/$kernel" "$work/vmlinux" || rm -f "$work/vmlinux"
echo "$CMDLINE" >"$work/cmdline"

rm -f "$out/stamp" "$out/vmlinux"
for f in vmlinuz vmlinux initramfs.img cmdline; do
  [[ ! -f "$work/$f" ]] || mv -f "$work/$f" "$out/$f"
done
echo "$key" >"$out/stamp"
echo "build-test-guest: kernel $kver -> $out" >&2
