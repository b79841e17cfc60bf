/**
 * SSH identities made by virtnode with OpenSSH's own ssh-keygen: an instance's host keys (injected through
 * cloud-config `ssh_keys`, so the host key is known before first contact) and virtnode's client key.
 * Private keys are secrets: they are returned to the caller for the seed, never logged, and their files are 0600.
 */
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { run } from '../exec/run.ts';
import { VirtnodeError, invalid } from '../lib/errors.ts';
import { withSignal } from '../lib/signal.ts';
import type { HostKeyType } from './render.ts';

export type { HostKeyType } from './render.ts';

export interface GeneratedKey {
  type: HostKeyType;
  /** A secret: never log it. */
  privateKey: string;
  /** One line, `ssh-ed25519 AAAA... comment`, without the newline. */
  publicKey: string;
  /** `SHA256:...`, as `ssh-keygen -l` and ssh print it. */
  fingerprint: string;
  privatePath: string;
  publicPath: string;
}

export interface GenerateHostKeysOptions {
  /** Default ['ed25519', 'ecdsa']. */
  types?: HostKeyType[];
  /** Written into the public keys, e.g. `web1 host key (virtnode)`. */
  comment: string;
  signal?: AbortSignal;
}

export interface GenerateUserKeyOptions {
  /** Default `virtnode@<host name>`. */
  comment?: string;
  signal?: AbortSignal;
}

export const DEFAULT_HOST_KEY_TYPES: readonly HostKeyType[] = ['ed25519', 'ecdsa'];
export const USER_KEY_FILE = 'id_ed25519';
export const PRIVATE_KEY_MODE = 0o600;
export const PUBLIC_KEY_MODE = 0o644;
const KEY_DIR_MODE = 0o700;
const RSA_KEY_BITS = 3072;
const ECDSA_KEY_BITS = 256;
const KEYGEN_TIMEOUT_MS = 60_000;
const HOST_KEY_TYPES: readonly HostKeyType[] = ['ed25519', 'ecdsa', 'rsa'];

/** OpenSSH's own file name for a host key of this type. */
export function hostKeyFileName(type: HostKeyType): string {
  return `ssh_host_${type}_key`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * `SHA256:...` of a public key line, as `ssh-keygen -l -E sha256` prints it: the unpadded base64 of the SHA-256
 * of the key blob. Computed here rather than by another ssh-keygen run per key (launch waits on it).
 */
export function publicKeyFingerprint(publicLine: string, source: string): string {
  const blob = publicLine.trim().split(/\s+/)[1];
  if (blob === undefined || !/^[A-Za-z0-9+/]+=*$/.test(blob)) throw new VirtnodeError('COMMAND_FAILED', `${source} is not an OpenSSH public key line`);
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** Makes one key pair at `privatePath` (and `.pub`), modes checked, and reads it back. */
async function generateKey(type: HostKeyType, privatePath: string, comment: string, signal: AbortSignal | undefined): Promise<GeneratedKey> {
  const publicPath = `${privatePath}.pub`;
  for (const path of [privatePath, publicPath]) {
    if (await exists(path)) {
      throw new VirtnodeError('CONFLICT', `${path} already exists; virtnode never overwrites a key`, { hint: 'remove it first if it really is to be replaced' });
    }
  }
  const bits = type === 'rsa' ? ['-b', String(RSA_KEY_BITS)] : type === 'ecdsa' ? ['-b', String(ECDSA_KEY_BITS)] : [];
  try {
    await run(['ssh-keygen', '-q', '-t', type, ...bits, '-N', '', '-C', comment, '-f', privatePath], withSignal({ timeoutMs: KEYGEN_TIMEOUT_MS }, signal));
    // ssh-keygen makes the private file 0600 itself; the public one follows the umask.
    await chmod(privatePath, PRIVATE_KEY_MODE);
    await chmod(publicPath, PUBLIC_KEY_MODE);
    const privateMode = (await lstat(privatePath)).mode & 0o777;
    if (privateMode !== PRIVATE_KEY_MODE) {
      throw new VirtnodeError('PERMISSION', `${privatePath} has mode ${privateMode.toString(8)}, not 600`, { hint: 'the file system may not support permissions' });
    }
    const [privateKey, publicText] = await Promise.all([readFile(privatePath, 'utf8'), readFile(publicPath, 'utf8')]);
    return { type, privateKey, publicKey: publicText.trim(), fingerprint: publicKeyFingerprint(publicText, publicPath), privatePath, publicPath };
  } catch (error) {
    await rm(privatePath, { force: true });
    await rm(publicPath, { force: true });
    throw error;
  }
}

function checkComment(comment: string): void {
  if (/[\r\n\0]/.test(comment)) throw invalid('comment', 'must be one line');
}

/**
 * Generates an instance's SSH host keys in `dir` (created 0700 if missing) as `ssh_host_<type>_key` (0600) and
 * `.pub` (0644). Refuses to overwrite existing keys (CONFLICT). On failure, the keys made by this call are removed.
 */
export async function generateHostKeys(dir: string, options: GenerateHostKeysOptions): Promise<GeneratedKey[]> {
  const types = options.types ?? DEFAULT_HOST_KEY_TYPES;
  if (types.length === 0) throw invalid('types', 'at least one host key type is needed', `choose from ${HOST_KEY_TYPES.join(', ')}`);
  for (const t of types) if (!HOST_KEY_TYPES.includes(t)) throw invalid('types', `unknown key type ${JSON.stringify(t)}`, `choose from ${HOST_KEY_TYPES.join(', ')}`);
  if (new Set(types).size !== types.length) throw invalid('types', 'a key type appears twice');
  checkComment(options.comment);
  options.signal?.throwIfAborted();
  await mkdir(dir, { recursive: true, mode: KEY_DIR_MODE });
  // In parallel: launch waits on this.
  const results = await Promise.allSettled(types.map((type) => generateKey(type, join(dir, hostKeyFileName(type)), options.comment, options.signal)));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed === undefined) return results.map((r) => (r as PromiseFulfilledResult<GeneratedKey>).value);
  for (const r of results) {
    if (r.status === 'fulfilled') {
      await rm(r.value.privatePath, { force: true });
      await rm(r.value.publicPath, { force: true });
    }
  }
  throw failed.reason;
}

/**
 * virtnode's own SSH client key, used when the user gives no key: `dir/id_ed25519` (0600) and `.pub` (0644).
 * `dir` is created 0700 if missing; an existing key is never overwritten (CONFLICT).
 */
export async function generateUserKey(dir: string, options: GenerateUserKeyOptions = {}): Promise<GeneratedKey> {
  const comment = options.comment ?? `virtnode@${hostname()}`;
  checkComment(comment);
  options.signal?.throwIfAborted();
  await mkdir(dir, { recursive: true, mode: KEY_DIR_MODE });
  return generateKey('ed25519', join(dir, USER_KEY_FILE), comment, options.signal);
}
