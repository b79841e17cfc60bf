#!/usr/bin/env bash
# Runs a command as it would run on a host of another KVM kind, to check that tests hold on all of them:
#   scripts/simulate-kvm.sh absent|hangs|works|fails COMMAND [ARGS...]
#   e.g. scripts/simulate-kvm.sh hangs ./scripts/test.sh            (the whole suite)
# In a private mount namespace (root only), /dev becomes an overlay of the real one (device nodes the kernel makes
# later, such as loop partitions, still show through) with /dev/kvm removed (absent) or replaced by a stand-in that
# opens (a null device). For hangs and works, qemu-system-x86_64 on PATH is a wrapper that runs the real QEMU under
# TCG whenever KVM is asked for: with its vCPUs never started (-S) for 'hangs', like the hosts whose KVM never gets
# a guest through early boot, as is for 'works'. For 'fails' the real QEMU meets the stand-in and exits ("kvm
# version too old"), like a host whose KVM device exists but cannot be used. The KVM verdict cache is private too,
# so the host-wide one (/run/virtnode) keeps this host's real verdict.
set -euo pipefail

usage() { echo "usage: $0 absent|hangs|works|fails COMMAND [ARGS...]" >&2; exit 2; }

if [ "${1:-}" = --inside ]; then
  shift
  kind=$1 tmp=$2
  shift 2
  mount -t tmpfs simulated-dev "$tmp/layers"
  mkdir "$tmp/layers/upper" "$tmp/layers/work" "$tmp/layers/pts" "$tmp/layers/shm"
  # The overlay hides the mounts under /dev: keep them aside and put them back on top.
  mount --rbind /dev/pts "$tmp/layers/pts"
  mount --rbind /dev/shm "$tmp/layers/shm"
  mount -t overlay simulated-dev -o "lowerdir=/dev,upperdir=$tmp/layers/upper,workdir=$tmp/layers/work" /dev
  mount --move "$tmp/layers/pts" /dev/pts
  mount --move "$tmp/layers/shm" /dev/shm
  rm -f /dev/kvm
  [ "$kind" = absent ] || mknod -m 0666 /dev/kvm c 1 3
  export SIMULATED_KVM=$kind PATH="$tmp/bin:$PATH" VIRTNODE_HOST_CACHE="$tmp/host-cache"
  exec "$@"
fi

[ $# -ge 2 ] || usage
kind=$1
shift
case "$kind" in absent | hangs | works | fails) ;; *) usage ;; esac
[ "$(id -u)" = 0 ] || { echo "$0 needs root (a private mount namespace)" >&2; exit 1; }
real_qemu=$(command -v qemu-system-x86_64) || { echo "qemu-system-x86_64 is missing: apt-get install qemu-system-x86" >&2; exit 1; }

tmp=$(mktemp -d /tmp/virtnode-simulated-kvm.XXXXXX)
# Only this process's own files: layers is an empty mount point out here (the tmpfs lives in the namespace).
cleanup() { rmdir "$tmp/layers"; rm -f "$tmp/bin/qemu-system-x86_64"; rmdir "$tmp/bin"; rm -rf "$tmp/host-cache"; rmdir "$tmp"; }
trap cleanup EXIT
mkdir "$tmp/layers" "$tmp/bin"
cat >"$tmp/bin/qemu-system-x86_64" <<EOF
#!/usr/bin/env bash
# Simulated KVM ($kind): the real QEMU under TCG instead of KVM; for 'hangs' the vCPUs never start; for 'fails' as is.
[ "\$SIMULATED_KVM" = fails ] && exec $real_qemu "\$@"
args=() kvm=0 prev=
for a in "\$@"; do
  b=\$a
  if [ "\$prev" = -accel ] && [ "\$a" = kvm ]; then b=tcg kvm=1; fi
  if [ "\$prev" = -machine ] && [[ "\$a" == *accel=kvm* ]]; then b=\${a//accel=kvm/accel=tcg} kvm=1; fi
  if [ "\$prev" = -cpu ] && [ "\$a" = host ]; then b=max; fi
  args+=("\$b") prev=\$a
done
if [ \$kvm = 1 ] && [ "\$SIMULATED_KVM" = hangs ]; then args+=(-S); fi
exec $real_qemu "\${args[@]}"
EOF
chmod 755 "$tmp/bin/qemu-system-x86_64"
status=0
unshare --mount --propagation private -- "$(cd "$(dirname "$0")" && pwd)/$(basename "$0")" --inside "$kind" "$tmp" "$@" || status=$?
exit "$status"
