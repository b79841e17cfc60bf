/**
 * NoCloud over HTTP for one guest, without a daemon or a host port: QEMU's user-mode network runs this program
 * for each TCP connection the guest opens to the metadata address (guestfwd ... -cmd:), with the connection as
 * stdin/stdout. It answers one GET for a seed file from the instance's seed directory and exits. Only that guest
 * can reach it, since it exists only inside that guest's virtual network.
 *
 * The first-boot user-data carries the instance's SSH host private keys (and a password hash). Once the first boot
 * is over (the guest's cloud-init phones home to FIRST_BOOT_DONE_PATH, or launch saw cloud-init finish), any later
 * GET of user-data gets the copy without them: a user in the guest cannot read the host keys later, and later
 * boots still see the same instance-id and the user's per-boot settings.
 * Usage: node metadata-responder.js SEED_DIR
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIRST_BOOT_DONE_PATH, USER_DATA_AFTER_FIRST_BOOT, markFirstBootDone, firstBootMarker } from './http-seed.ts';

const SEED_FILES = new Set(['meta-data', 'user-data', 'vendor-data', 'network-config']);
const REQUEST_LIMIT_BYTES = 16 * 1024;
/** A connection the guest opens and never finishes a request on does not keep a process on the host. */
const CONNECTION_TIMEOUT_MS = Number(process.env['VIRTNODE_RESPONDER_TIMEOUT_MS'] ?? 10_000);

function respond(status: string, body: Buffer): void {
  process.stdout.write(`HTTP/1.0 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
  process.stdout.end(body, () => process.exit(0));
}

function requestPath(requestLine: string, method: 'GET' | 'POST'): string | undefined {
  const match = /^(GET|POST) (\S+) HTTP\/1\.[01]$/.exec(requestLine.trim());
  if (match === null || match[1] !== method) return undefined;
  return match[2]!.split('?')[0]!.replace(/^\/+/, '/');
}

export function seedFileFor(requestLine: string): string | undefined {
  const path = requestPath(requestLine, 'GET')?.slice(1);
  return path !== undefined && SEED_FILES.has(path) ? path : undefined;
}

/** The file that answers a seed request now: user-data without secrets once the first boot is over. */
export function seedFileToServe(seedDir: string, file: string): string {
  if (file === 'user-data' && existsSync(firstBootMarker(seedDir))) return USER_DATA_AFTER_FIRST_BOOT;
  return file;
}

export function isFirstBootDone(requestLine: string): boolean {
  return requestPath(requestLine, 'POST') === FIRST_BOOT_DONE_PATH;
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
    const requestLine = request.slice(0, request.indexOf('\r\n'));
    if (isFirstBootDone(requestLine)) {
      markFirstBootDone(seedDir);
      return respond('200 OK', Buffer.from('ok\n'));
    }
    const file = seedFileFor(requestLine);
    if (file === undefined) return respond('404 Not Found', Buffer.from('not found\n'));
    let body: Buffer;
    try {
      body = readFileSync(join(seedDir, seedFileToServe(seedDir, file)));
    } catch {
      body = Buffer.alloc(0); // an absent optional file (vendor-data) is an empty one
    }
    respond('200 OK', body);
  });
  process.stdin.on('end', () => process.exit(0));
}

if (process.argv[1]?.endsWith('metadata-responder.js') || process.argv[1]?.endsWith('metadata-responder.ts')) main();
