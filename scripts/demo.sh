#!/usr/bin/env bash
# The main job: launch a VM from the default image (Debian 12 with cloud-init, built by scripts/build-image.sh)
# and show how to reach it. Under software emulation (TCG) the first boot takes one to two minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/env.sh
. "$root/scripts/env.sh"
name=${1:-demo}

if ! virtnode image info debian-12 >/dev/null 2>&1; then
  virtnode image build debian-12      # instant when setup has built it already (cached by recipe)
fi
if virtnode info "$name" >/dev/null 2>&1; then
  echo "An instance called $name exists already; replacing it."
  virtnode delete --force "$name"
fi
virtnode launch debian-12 --name "$name" --memory 1G --cpus 2
echo
virtnode info "$name"
cat <<MSG

Reach it:   virtnode shell $name               (SSH; its host key is already known to virtnode)
Run:        virtnode exec $name -- uname -a
Console:    virtnode console $name             (serial; Ctrl-] detaches)
Stop it:    virtnode stop $name
Remove it:  virtnode delete --force $name
MSG
