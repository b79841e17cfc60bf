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
readonly CMDLINE='console=ttyS0 quiet panic=-1'
readonly MODULES=(virtio_pci virtio_blk crc32c_generic ext4 xfs)
readonly SKIP_MODULE_DIRS=(kernel/arch/x86/crypto/)
inputs=("${BASH_SOURCE[0]}" "$repo/scripts/seal-appliance/init" "$repo/src/templates/seal.sh")

die() {
  echo "build-seal-appliance: $*" >&2
  exit 1
}

# extract_vmlinux BZIMAGE OUT: the ELF kernel inside a bzImage, if it is PVH-bootable (as build-test-guest.sh).
extract_vmlinux() {
  local image=$1 dest=$2 magic offset tool
  local -a decompress
  grep -qx 'CONFIG_PVH=y' "/boot/config-$kver" 2>/dev/null || return 1
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
for applet in insmod mount umount poweroff find usleep; do
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
    sha256sum "${inputs[@]}" "$busybox" | cut -d' ' -f1
    stat -c '%s %Y' "/boot/$kernel" "$moddir/modules.dep"
  } | sha256sum | cut -d' ' -f1
)

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [[ -f "$out/stamp" && "$(cat "$out/stamp")" == "$key" && -f "$out/vmlinuz" && -f "$out/initramfs.img" && -f "$out/cmdline" ]]; then
  exit 0
fi

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp,mnt/root,etc/seal-appliance}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
while read -r applet; do
  [[ "$applet" == busybox ]] && continue
  ln -s busybox "$root/bin/$applet"
done <<<"$applets"
ln -s ../bin/busybox "$root/sbin/busybox"

declare -A seen=()
list="$root/etc/seal-appliance/modules"
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

install -m 0755 "$repo/scripts/seal-appliance/init" "$root/init"
install -m 0755 "$repo/src/templates/seal.sh" "$root/seal.sh"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
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
echo "build-seal-appliance: kernel $kver -> $out" >&2
