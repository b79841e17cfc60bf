/**
 * What the sealing script reported: one line per change (`removed /etc/ssh/ssh_host_ed25519_key`), then SEAL-OK.
 */
const CHANGE = /^(removed|emptied) \//;

export function changesOf(lines: string[]): string[] {
  return lines.filter((l) => CHANGE.test(l));
}

export type ApplianceOutcome =
  | { kind: 'sealed'; root: string | undefined; changes: string[] }
  | { kind: 'no-root' }
  | { kind: 'failed'; error: string | undefined; tail: string[] };

/**
 * Reads what the sealing appliance (scripts/seal-appliance/init running src/templates/seal.sh) printed on its
 * serial console. QEMU's UART drops a byte it cannot pass on (seen in CI when the console was a pipe: `removed
 * /var/lib/cloud/semSEAL-OK`); the console now goes to a file, and the reading still takes a lone CR or LF as a
 * line end and finds a marker at the end of the line it was glued to.
 */
export function readApplianceConsole(consoleText: string): ApplianceOutcome {
  const lines = consoleText.split(/[\r\n]+/).map((l) => l.trim()).filter((l) => l !== '');
  const endsWith = (marker: string) => lines.some((l) => l.endsWith(marker));
  if (endsWith('VIRTNODE-SEAL-NOROOT')) return { kind: 'no-root' };
  if (endsWith('VIRTNODE-SEAL-DONE') && endsWith('SEAL-OK')) {
    const root = lines.find((l) => l.startsWith('VIRTNODE-SEAL-ROOT '))?.slice('VIRTNODE-SEAL-ROOT '.length);
    const changes = changesOf(lines).map((l) => l.replace(/(VIRTNODE-SEAL-DONE|SEAL-OK)$/, ''));
    return { kind: 'sealed', root, changes };
  }
  const error = lines.find((l) => l.includes('VIRTNODE-SEAL-ERROR '));
  return { kind: 'failed', error: error?.slice(error.indexOf('VIRTNODE-SEAL-ERROR ') + 'VIRTNODE-SEAL-ERROR '.length), tail: lines.slice(-5) };
}
