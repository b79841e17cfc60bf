/**
 * The protocol layer under a disk's format node: a host file (driver `file`), or a file on an NFS export that
 * QEMU opens with its own libnfs client (driver `nfs`, from an nfs://SERVER/EXPORT/FILE path; no kernel mount).
 * QEMU's image locking exists only for `file`: over nfs:// a second writer is not refused by QEMU.
 */
export type ProtocolNode = { driver: 'file'; filename: string } | { driver: 'nfs'; server: { type: 'inet'; host: string }; path: string };

export function protocolNode(path: string): ProtocolNode {
  const m = /^nfs:\/\/([^/?#]+)(\/[^?#]*)$/.exec(path);
  if (m === null) return { driver: 'file', filename: path };
  const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
  return { driver: 'nfs', server: { type: 'inet', host }, path: m[2]! };
}

/** The same node as flat -blockdev properties (`server.host=...`). */
export function protocolProps(path: string): Record<string, string> {
  const node = protocolNode(path);
  if (node.driver === 'file') return { driver: 'file', filename: node.filename };
  return { driver: 'nfs', 'server.type': node.server.type, 'server.host': node.server.host, path: node.path };
}

/** One spelling per disk, for claims on it: an nfs:// URL with its host in lower case and single slashes. */
export function diskKey(path: string): string {
  const node = protocolNode(path);
  if (node.driver === 'file') return node.filename;
  return `nfs://${node.server.host.toLowerCase()}${node.path.replace(/\/{2,}/g, '/')}`;
}
