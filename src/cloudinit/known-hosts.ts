/**
 * virtnode's own known_hosts file (OpenSSH format, `UserKnownHostsFile=` for its ssh calls): one line per host
 * key, `PATTERNS KEYTYPE BASE64 virtnode:INSTANCE`. The trailing comment marks which instance a line belongs to, so
 * an instance's lines are replaced or removed without touching any other line (other instances', or lines a person
 * added by hand). Every change is written atomically (old or new content, never torn) under a lock file, so
 * concurrent launches do not lose each other's lines.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { VirtnodeError, invalid } from '../lib/errors.ts';
import { writeFileAtomic } from '../lib/fs-atomic.ts';
import { acquireFileLock } from '../lib/file-lock.ts';

export interface SetHostKeysOptions {
  /** The instance the lines belong to (its name); written as the `virtnode:NAME` comment. */
  marker: string;
  signal?: AbortSignal;
}

export interface RemoveHostOptions {
  signal?: AbortSignal;
}

export const KNOWN_HOSTS_MODE = 0o644;
export const MARKER_PREFIX = 'virtnode:';
const DIR_MODE = 0o700;
const LOCK_WAIT_MS = 10_000;
/** Key types OpenSSH writes in known_hosts. */
const KEY_TYPES = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MARKER = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** How OpenSSH names a host in known_hosts: `host` on port 22, `[host]:port` otherwise. */
export function hostPattern(host: string, port = 22): string {
  if (host === '' || /[\s,[\]]/.test(host)) throw invalid('host', `${JSON.stringify(host)} is not a host name or address`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid('port', `${port} is not a TCP port`);
  return port === 22 ? host : `[${host}]:${port}`;
}

function checkMarker(marker: string): void {
  if (!MARKER.test(marker)) throw invalid('marker', `${JSON.stringify(marker)} is not an instance name`, 'letters, digits, ".", "_" and "-"');
}

function checkPatterns(patterns: string[]): void {
  if (patterns.length === 0) throw invalid('hostPatterns', 'at least one host pattern is needed', 'e.g. [127.0.0.1]:2222');
  for (const p of patterns) {
    // One pattern: no separators, not a comment, not a marker like @revoked, no negation (that would never match).
    if (p === '' || /[\s,]/.test(p) || /^[#@!|]/.test(p)) throw invalid('hostPatterns', `${JSON.stringify(p)} is not a known_hosts host pattern`, 'e.g. web1 or [127.0.0.1]:2222');
  }
}

/** `type base64` of an OpenSSH public key line (its comment dropped). */
function keyFields(publicKey: string, index: number): string {
  const [type, data] = publicKey.trim().split(/\s+/);
  if (type === undefined || data === undefined || !KEY_TYPES.has(type) || !BASE64.test(data)) {
    throw invalid(`publicKeys[${index}]`, 'is not an OpenSSH public key line', 'e.g. the content of ssh_host_ed25519_key.pub');
  }
  return `${type} ${data}`;
}

interface Line {
  text: string;
  /** The instance a virtnode line belongs to. */
  marker?: string;
  patterns?: string[];
}

function parseLines(content: string): Line[] {
  const lines = content.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((text) => {
    const fields = text.trim().split(/\s+/);
    const last = fields.at(-1);
    const first = fields[0];
    if (fields.length === 4 && first !== undefined && last?.startsWith(MARKER_PREFIX)) {
      return { text, marker: last.slice(MARKER_PREFIX.length), patterns: first.split(',') };
    }
    return { text };
  });
}

function readLines(file: string): Line[] {
  return existsSync(file) ? parseLines(readFileSync(file, 'utf8')) : [];
}

function writeLines(file: string, lines: Line[]): void {
  // Not synced: every start of an instance writes its lines again from its record, and takes its port from any
  // other line, so a change lost to a power cut is made good before the port is used again.
  writeFileAtomic(file, lines.map((l) => `${l.text}\n`).join(''), KNOWN_HOSTS_MODE, { durable: false });
  chmodSync(file, KNOWN_HOSTS_MODE); // the umask may have narrowed it
}

/** A lock file next to `file`, shared by every virtnode process; a dead owner's lock is taken over atomically. */
async function withLock<T>(file: string, signal: AbortSignal | undefined, body: () => T): Promise<T> {
  const lockPath = `${file}.lock`;
  const release = await acquireFileLock(lockPath, {
    waitMs: LOCK_WAIT_MS,
    ...(signal === undefined ? {} : { signal }),
    busy: () => new VirtnodeError('BUSY', `${file} is locked by another virtnode process (${lockPath})`, { hint: 'retry; remove the lock file only if no virtnode process is running' }),
  });
  try {
    return body();
  } finally {
    await release();
  }
}

/**
 * Makes `publicKeys` the only keys known for instance `marker`, under `hostPatterns` (`[127.0.0.1]:2222`,
 * `web1`): its previous lines are replaced; any other virtnode line naming one of these patterns loses that
 * pattern (a stale line for a reused port would otherwise still be trusted); other lines stay as they are.
 * The file (0644) and its directory (0700) are created when missing.
 */
export async function setHostKeys(file: string, hostPatterns: string[], publicKeys: string[], options: SetHostKeysOptions): Promise<void> {
  checkMarker(options.marker);
  checkPatterns(hostPatterns);
  if (publicKeys.length === 0) throw invalid('publicKeys', 'at least one public key is needed');
  const keys = publicKeys.map(keyFields);
  const patterns = [...new Set(hostPatterns)];
  mkdirSync(dirname(file), { recursive: true, mode: DIR_MODE });
  await withLock(file, options.signal, () => {
    const kept: Line[] = [];
    for (const line of readLines(file)) {
      if (line.marker === options.marker) continue;
      if (line.marker !== undefined && line.patterns !== undefined && line.patterns.some((p) => patterns.includes(p))) {
        const rest = line.patterns.filter((p) => !patterns.includes(p));
        if (rest.length > 0) kept.push({ text: [rest.join(','), ...line.text.trim().split(/\s+/).slice(1)].join(' ') });
        continue;
      }
      kept.push(line);
    }
    const added = [...new Set(keys)].map((k) => ({ text: `${patterns.join(',')} ${k} ${MARKER_PREFIX}${options.marker}` }));
    writeLines(file, [...kept, ...added]);
  });
}

/** Removes every line of instance `instanceName`; nothing else changes. A missing file is left missing. */
export async function removeHost(file: string, instanceName: string, options: RemoveHostOptions = {}): Promise<void> {
  checkMarker(instanceName);
  if (!existsSync(file)) return;
  await withLock(file, options.signal, () => {
    const lines = readLines(file);
    const kept = lines.filter((l) => l.marker !== instanceName);
    if (kept.length !== lines.length) writeLines(file, kept);
  });
}
