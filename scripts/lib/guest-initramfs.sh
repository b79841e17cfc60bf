# Shared by scripts/build-test-guest.sh and scripts/build-seal-appliance.sh: both build a tiny VM from Debian
# packages only (linux-image-amd64, busybox-static, kmod, cpio): the host's newest kernel plus a busybox
# initramfs with the modules it needs. Source it after setting BUILDER (the name errors start with).
# Outputs in OUT_DIR: vmlinuz, vmlinux (when PVH-bootable), initramfs.img, cmdline, stamp (the build key).

die() {
  echo "$BUILDER: $*" >&2
  exit 1
}

# require_host_tools APPLET...: the programs the build runs and a static busybox with these applets.
# Sets busybox and applets.
require_host_tools() {
  local tool applet
  for tool in cpio modprobe sha256sum flock; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install -y cpio kmod coreutils util-linux)"
  done
  busybox=/bin/busybox
  [[ -x "$busybox" ]] || die "missing $busybox (apt-get install -y busybox-static)"
  applets=$("$busybox" --list)
  for applet in "$@"; do
    grep -qx "$applet" <<<"$applets" || die "$busybox has no $applet applet (need busybox-static)"
  done
}

# find_kernel: the newest /boot/vmlinuz-* and its modules. Sets kernel, kver and moddir.
find_kernel() {
  kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -n 1)
  [[ -n "$kernel" ]] || die "no /boot/vmlinuz-* (apt-get install -y linux-image-amd64)"
  kver=${kernel#vmlinuz-}
  moddir="/lib/modules/$kver"
  [[ -d "$moddir" ]] || die "no $moddir for kernel $kver"
}

# build_key CMDLINE INPUT_FILE...: what the outputs depend on (kernel, command line, scripts, busybox).
build_key() {
  local cmdline=$1
  shift
  {
    echo "kver=$kver"
    echo "cmdline=$cmdline"
    sha256sum "$@" "${BASH_SOURCE[0]}" "$busybox" | cut -d' ' -f1
    stat -c '%s %Y' "/boot/$kernel" "$moddir/modules.dep"
  } | sha256sum | cut -d' ' -f1
}

# start_build OUT KEY: takes OUT's build lock; exits the script at once when OUT was already built from KEY.
# Otherwise sets work (a scratch directory removed at exit) and root (the initramfs tree, with the usual dirs).
start_build() {
  local out=$1 key=$2
  mkdir -p "$out"
  exec 9>"$out/.lock"
  flock 9
  if [[ -f "$out/stamp" && "$(cat "$out/stamp")" == "$key" && -f "$out/vmlinuz" && -f "$out/initramfs.img" && -f "$out/cmdline" ]]; then
    exit 0
  fi
  work=$(mktemp -d "$out/.build.XXXXXX")
  trap 'rm -rf -- "$work"' EXIT
  root="$work/root"
  mkdir -p "$root"/{bin,sbin,dev,proc,sys,run,tmp}
  chmod 1777 "$root/tmp"
}

# install_busybox ROOT: busybox and a link per applet.
install_busybox() {
  local root=$1 applet
  cp "$busybox" "$root/bin/busybox"
  while read -r applet; do
    [[ "$applet" == busybox ]] && continue
    ln -s busybox "$root/bin/$applet"
  done <<<"$applets"
  ln -s ../bin/busybox "$root/sbin/busybox"
}

# CPU-specific variants (crc32c-intel, crct10dif-pclmul) fail on TCG's CPU model and cost about 80 ms each to
# try; the generic versions that modprobe also lists suffice.
readonly SKIP_MODULE_DIRS=(kernel/arch/x86/crypto/)

# copy_modules ROOT LIST MODULE...: the modules with their dependencies, in load order, each file once,
# decompressed; LIST gets their paths inside ROOT, one per line, for /init to insmod.
copy_modules() {
  local root=$1 list=$2 mod deps verb path rel skip dest
  shift 2
  local -A seen=()
  : >"$list"
  for mod in "$@"; do
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
}

# extract_vmlinux BZIMAGE OUT: the ELF kernel inside a bzImage, if it is PVH-bootable. QEMU boots it with
# -kernel without running the kernel's own decompressor, which takes about 3.5 s under TCG.
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

# finish_build WORK ROOT OUT CMDLINE KEY: packs ROOT as an uncompressed newc cpio (unpacking gzip under TCG
# costs about 0.1 s), adds the kernel and command line, and moves the outputs into OUT, stamp last.
finish_build() {
  local work=$1 root=$2 out=$3 cmdline=$4 key=$5 f
  if [[ $EUID -eq 0 ]]; then
    mknod -m 600 "$root/dev/console" c 5 1
  fi
  (cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --quiet) >"$work/initramfs.img"
  cp "/boot/$kernel" "$work/vmlinuz"
  extract_vmlinux "/boot/$kernel" "$work/vmlinux" || rm -f "$work/vmlinux"
  echo "$cmdline" >"$work/cmdline"
  rm -f "$out/stamp" "$out/vmlinux"
  for f in vmlinuz vmlinux initramfs.img cmdline; do
    [[ ! -f "$work/$f" ]] || mv -f "$work/$f" "$out/$f"
  done
  echo "$key" >"$out/stamp"
  echo "$BUILDER: kernel $kver -> $out" >&2
}
