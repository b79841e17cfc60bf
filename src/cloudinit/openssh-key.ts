/**
 * SSH key pairs made in this process (node:crypto) and written in OpenSSH's own formats, as ssh-keygen writes
 * them: the public key line (`ssh-ed25519 AAAA... comment`, RFC 4253 wire encoding), the unencrypted
 * `openssh-key-v1` private key (OpenSSH's PROTOCOL.key) and the `SHA256:` fingerprint. A launch needs two host
 * keys; making them here instead of with four ssh-keygen processes takes it from some 150 ms to a few.
 */
import { createHash, generateKeyPair, type JsonWebKey, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import type { HostKeyType } from './render.ts';

const generate = promisify(generateKeyPair);

const RSA_KEY_BITS = 3072;
const PEM_LINE = 70;
/** The private section is padded to the block size of its cipher; "none" has 8. */
const BLOCK_SIZE = 8;

export interface OpenSshKeyPair {
  type: HostKeyType;
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` ... with a final newline. A secret. */
  privateKey: string;
  /** One line, `ssh-ed25519 AAAA... comment`, without the newline. */
  publicKey: string;
  /** `SHA256:...`, as `ssh-keygen -l` and ssh print it. */
  fingerprint: string;
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** RFC 4251 `string`: a length, then the bytes. */
function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([uint32(bytes.length), bytes]);
}

/** RFC 4251 `mpint` of an unsigned big-endian number: no leading zero bytes, one added if the top bit is set. */
function mpint(unsigned: Buffer): Buffer {
  let start = 0;
  while (start < unsigned.length && unsigned[start] === 0) start++;
  const bytes = unsigned.subarray(start);
  return sshString(bytes.length > 0 && bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

const field = (jwk: JsonWebKey, name: 'x' | 'y' | 'd' | 'n' | 'e' | 'p' | 'q' | 'qi'): Buffer => Buffer.from(jwk[name] as string, 'base64url');

/** The key type's wire name, its public key blob, and the type-specific fields of the private section. */
function encode(type: HostKeyType, jwk: JsonWebKey): { name: string; publicBlob: Buffer; privateFields: Buffer } {
  switch (type) {
    case 'ed25519': {
      const pk = field(jwk, 'x');
      const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pk)]);
      // OpenSSH keeps the 32-byte seed followed by the public key as its 64-byte "secret key".
      return { name: 'ssh-ed25519', publicBlob, privateFields: Buffer.concat([publicBlob, sshString(Buffer.concat([field(jwk, 'd'), pk]))]) };
    }
    case 'ecdsa': {
      const point = Buffer.concat([Buffer.from([0x04]), field(jwk, 'x'), field(jwk, 'y')]);
      const publicBlob = Buffer.concat([sshString('ecdsa-sha2-nistp256'), sshString('nistp256'), sshString(point)]);
      return { name: 'ecdsa-sha2-nistp256', publicBlob, privateFields: Buffer.concat([publicBlob, mpint(field(jwk, 'd'))]) };
    }
    case 'rsa': {
      const [n, e] = [field(jwk, 'n'), field(jwk, 'e')];
      const publicBlob = Buffer.concat([sshString('ssh-rsa'), mpint(e), mpint(n)]);
      // The private section lists n before e (unlike the public blob); iqmp is q^-1 mod p, JWK's qi.
      const privateFields = Buffer.concat([sshString('ssh-rsa'), mpint(n), mpint(e), mpint(field(jwk, 'd')), mpint(field(jwk, 'qi')), mpint(field(jwk, 'p')), mpint(field(jwk, 'q'))]);
      return { name: 'ssh-rsa', publicBlob, privateFields };
    }
  }
}

/** `SHA256:` and the unpadded base64 of the SHA-256 of the public key blob. */
export function fingerprintOf(publicBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The fingerprint of an OpenSSH public key line. */
export function publicKeyFingerprint(publicKeyLine: string): string {
  const data = publicKeyLine.trim().split(/\s+/)[1];
  if (data === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) throw new Error('not an OpenSSH public key line');
  return fingerprintOf(Buffer.from(data, 'base64'));
}

function privateKeyFile(publicBlob: Buffer, privateFields: Buffer, comment: string): string {
  const check = randomBytes(4);
  let section = Buffer.concat([check, check, privateFields, sshString(comment)]);
  const padding = (BLOCK_SIZE - (section.length % BLOCK_SIZE)) % BLOCK_SIZE;
  section = Buffer.concat([section, Buffer.from(Array.from({ length: padding }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'), // cipher
    sshString('none'), // kdf
    sshString(''), // kdf options
    uint32(1), // one key
    sshString(publicBlob),
    sshString(section),
  ]).toString('base64');
  const lines = body.match(new RegExp(`.{1,${PEM_LINE}}`, 'g'))!;
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** A new key pair of this type (ECDSA on P-256, RSA of 3072 bits, as ssh-keygen's defaults). */
export async function generateOpenSshKey(type: HostKeyType, comment: string): Promise<OpenSshKeyPair> {
  const pair =
    type === 'ed25519'
      ? await generate('ed25519')
      : type === 'ecdsa'
        ? await generate('ec', { namedCurve: 'P-256' })
        : await generate('rsa', { modulusLength: RSA_KEY_BITS, publicExponent: 0x10001 });
  const { name, publicBlob, privateFields } = encode(type, pair.privateKey.export({ format: 'jwk' }));
  return {
    type,
    privateKey: privateKeyFile(publicBlob, privateFields, comment),
    publicKey: `${name} ${publicBlob.toString('base64')}${comment === '' ? '' : ` ${comment}`}`,
    fingerprint: fingerprintOf(publicBlob),
  };
}
