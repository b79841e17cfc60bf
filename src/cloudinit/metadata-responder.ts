/**
 * NoCloud over HTTP for one guest, without a daemon or a host port: QEMU's user-mode network runs this program
 * for each TCP connection the guest opens to the metadata address (guestfwd ... -cmd:), with the connection as
 * stdin/stdout. It answers one GET for a seed file from the instance's seed directory and exits. Only that guest
 * can reach it, since it exists only inside that guest's virtual network.
 * Usage: node metadata-responder.js SEED_DIR
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const SEED_FILES = new Set(['meta-data', 'user-data', 'vendor-data', 'network-config']);
const REQUEST_LIMIT_BYTES = 16 * 1024;
/** A connection the guest opens and never finishes a request on does not keep a process on the host. */
const CONNECTION_TIMEOUT_MS = Number(process.env['VIRTNODE_RESPONDER_TIMEOUT_MS'] ?? 10_000);

function respond(status: string, body: Buffer): void {
  process.stdout.write(`HTTP/1.0 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
  process.stdout.end(body, () => process.exit(0));
}

export function seedFileFor(requestLine: string): string | undefined {
  const match = /^GET (\S+) HTTP\/1\.[01]$/.exec(requestLine.trim());
  if (match === null) return undefined;
  const path = match[1]!.split('?')[0]!.replace(/^\/+/, '');
  return SEED_FILES.has(path) ? path : undefined;
}

function main(): void {
  const seedDir = process.argv[2];
  if (seedDir === undefined) process.exit(2);
  let request = '';
  setTimeout(() => respond('408 Request Timeout', Buffer.alloc(0)), CONNECTION_TIMEOUT_MS);
  process.stdin.setEncoding('latin1');
  process.stdin.on('data', (chunk: string) => {
    request += chunk;
    if (request.length > REQUEST_LIMIT_BYTES) respond('413 Request Too Large', Buffer.alloc(0));
    const end = request.indexOf('\r\n\r\n');
    if (end < 0) return;
    process.stdin.pause();
    const file = seedFileFor(request.slice(0, request.indexOf('\r\n')));
    if (file === undefined) return respond('404 Not Found', Buffer.from('not found\n'));
    let body: Buffer;
    try {
      body = readFileSync(join(seedDir, file));
    } catch {
      body = Buffer.alloc(0); // an absent optional file (vendor-data) is an empty one
    }
    respond('200 OK', body);
  });
  process.stdin.on('end', () => process.exit(0));
}

if (process.argv[1]?.endsWith('metadata-responder.js') || process.argv[1]?.endsWith('metadata-responder.ts')) main();
