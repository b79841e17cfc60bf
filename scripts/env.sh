# Sourced by the scripts: puts the pinned Node 24 first on PATH .
VIRTNODE_ROOT=${VIRTNODE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export PATH="$VIRTNODE_ROOT/.tools/node24/bin:$VIRTNODE_ROOT/node_modules/.bin:$PATH"
# Built guest images live outside the checkout, so every clone on this machine (and CI) reuses them.
export VIRTNODE_IMAGE_DIR="${VIRTNODE_IMAGE_DIR:-/var/cache/virtnode/images}"
