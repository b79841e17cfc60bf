#!/usr/bin/env bash
# Runs a command as it would run on a host of another KVM kind, to check that tests hold on all three:
#   scripts/simulate-kvm.sh absent|hangs|works COMMAND [ARGS...]
#   e.g. scripts/simulate-kvm.sh hangs ./scripts/test.sh test/integration/host-check
# In a private mount namespace (root only), /dev becomes a tmpfs of links to the real nodes, with /dev/kvm left out
# (absent) or a stand-in that opens (hangs, works: a link to /dev/null), and qemu-system-x86_64 on PATH is a wrapper
# that runs the real QEMU under TCG whenever KVM is asked for: with its vCPUs never started (-S) for 'hangs', like the
# hosts whose KVM never gets a guest through early boot, as is for 'works'. The KVM verdict cache is private too, so
# the host-wide one (/run/virtnode) keeps this host's real verdict. Device nodes the kernel makes later (loop
# partitions) do not show up in the simulated /dev: use it for tests that do not make devices.
set -euo pipefail

usage() { echo "usage: $0 absent|hangs|works COMMAND [ARGS...]" >&2; exit 2; }

if [ "${1:-}" = --inside ]; then
  shift
  kind=$1 tmp=$2
  shift 2
  mount --rbind /dev "$tmp/dev-real"
  mount -t tmpfs -o mode=755 simulated-dev /dev
  for entry in "$tmp"/dev-real/* "$tmp"/dev-real/.[!.]*; do
    [ -e "$entry" ] || [ -L "$entry" ] || continue
    name=${entry##*/}
    [ "$name" = kvm ] && continue
    if [ -L "$entry" ]; then cp -P "$entry" "/dev/$name"; else ln -s "$entry" "/dev/$name"; fi
  done
  [ "$kind" = absent ] || ln -s "$tmp/dev-real/null" /dev/kvm
  export SIMULATED_KVM=$kind PATH="$tmp/bin:$PATH" VIRTNODE_HOST_CACHE="$tmp/host-cache"
  exec "$@"
fi

[ $# -ge 2 ] || usage
kind=$1
shift
case "$kind" in absent | hangs | works) ;; *) usage ;; esac
[ "$(id -u)" = 0 ] || { echo "$0 needs root (a private mount namespace)" >&2; exit 1; }
real_qemu=$(command -v qemu-system-x86_64) || { echo "qemu-system-x86_64 is missing: apt-get install qemu-system-x86" >&2; exit 1; }

tmp=$(mktemp -d /tmp/virtnode-simulated-kvm.XXXXXX)
# Only this process's own files: dev-real is an empty mount point out here (the bind lives in the namespace).
cleanup() { rmdir "$tmp/dev-real"; rm -f "$tmp/bin/qemu-system-x86_64"; rmdir "$tmp/bin"; rm -rf "$tmp/host-cache"; rmdir "$tmp"; }
trap cleanup EXIT
mkdir "$tmp/dev-real" "$tmp/bin"
cat >"$tmp/bin/qemu-system-x86_64" <<EOF
#!/usr/bin/env bash
# Simulated KVM ($kind): the real QEMU under TCG instead of KVM; for 'hangs' the vCPUs never start.
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
