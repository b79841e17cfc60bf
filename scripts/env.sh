# Sourced by the scripts: puts the pinned Node 24 first on PATH .
VIRTNODE_ROOT=${VIRTNODE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export PATH="$VIRTNODE_ROOT/.tools/node24/bin:$VIRTNODE_ROOT/node_modules/.bin:$PATH"
