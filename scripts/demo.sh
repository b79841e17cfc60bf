#!/usr/bin/env bash
# The main job: launch a VM and show how to reach it. Until virtnode builds its default Debian cloud image
# (see the issues), the VM is the tiny test guest: a Debian kernel with a busybox shell on its serial console.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
guest="$root/.cache/test-guest"
name=${1:-demo}
kernel="$guest/vmlinux"; [ -f "$kernel" ] || kernel="$guest/vmlinuz"

if virtnode info "$name" >/dev/null 2>&1; then
  echo "An instance called $name exists already; replacing it."
  virtnode delete --force "$name"
fi
start_ns=$(date +%s%N)
virtnode create "$name" --cpus 1 --memory 256M --kernel "$kernel" --initrd "$guest/initramfs.img" \
  --cmdline "$(cat "$guest/cmdline")" --start
echo "Waiting for the guest to boot (software emulation: a few seconds)..."
booted=0
for _ in $(seq 1 120); do
  if virtnode logs "$name" | grep -q VIRTNODE-TEST-GUEST-READY; then booted=1; break; fi
  sleep 0.25
done
[ "$booted" = 1 ] || { echo "the guest did not print its readiness marker within 30 s; see: virtnode logs $name" >&2; exit 1; }
echo "Booted in $(( ($(date +%s%N) - start_ns) / 1000000 )) ms."
echo
virtnode info "$name"
echo
echo "Its console so far:"
virtnode logs "$name" | tail -n 5 | sed "s/\x1b\[6n//g"
cat <<MSG

Reach it:   virtnode console $name      (a shell on its serial console; Ctrl-] detaches)
Stop it:    virtnode stop $name         (ACPI power button; the guest powers off)
Remove it:  virtnode delete $name
MSG
