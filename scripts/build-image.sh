#!/usr/bin/env bash
# Builds the default guest image (Debian 12, cloud-init NoCloud, BIOS boot via EXTLINUX) into .cache/images.
# Needs root and network access to the Debian mirror; cached by recipe key, so a second run returns at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/env.sh
exec node scripts/build-image.ts "$@"
