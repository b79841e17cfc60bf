import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run } from '../exec/run.ts';
import { isVirtnodeError } from '../lib/errors.ts';
import { renderUserData } from './render.ts';
import { DEFAULT_HOST_KEY_TYPES, generateHostKeys, generateUserKey } from './ssh-host-keys.ts';
import { validateCloudConfig } from './validate.ts';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-keys-test-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const mode = (path: string): number => statSync(path).mode & 0o777;

/** `ssh-keygen -lf FILE` as a person would type it: "256 SHA256:... comment (ED25519)". */
async function keygenFingerprint(path: string): Promise<string> {
  const { stdout } = await run(['ssh-keygen', '-lf', path]);
  return stdout.split(' ')[1] ?? '';
}

describe('generateHostKeys', () => {
  it('makes ed25519 and ecdsa keys by default: 0600 private, 0644 public, in a new 0700 directory', async () => {
    const dir = join(tempDir(), 'instances', 'web1', 'ssh');
    const keys = await generateHostKeys(dir, { comment: 'web1 host key (virtnode)' });
    expect(DEFAULT_HOST_KEY_TYPES).toEqual(['ed25519', 'ecdsa']);
    expect(keys.map((k) => k.type)).toEqual(['ed25519', 'ecdsa']);
    expect(mode(dir)).toBe(0o700);
    for (const key of keys) {
      expect(key.privatePath).toBe(join(dir, `ssh_host_${key.type}_key`));
      expect(key.publicPath).toBe(`${key.privatePath}.pub`);
      expect(mode(key.privatePath)).toBe(0o600);
      expect(mode(key.publicPath)).toBe(0o644);
      expect(key.privateKey).toBe(readFileSync(key.privatePath, 'utf8'));
      expect(key.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]+-----END OPENSSH PRIVATE KEY-----\n$/);
      expect(key.publicKey).toBe(readFileSync(key.publicPath, 'utf8').trim());
      expect(key.publicKey.endsWith(' web1 host key (virtnode)')).toBe(true);
    }
    expect(keys[0]?.publicKey).toMatch(/^ssh-ed25519 AAAA\S+ /);
    expect(keys[1]?.publicKey).toMatch(/^ecdsa-sha2-nistp256 AAAA\S+ /);
  });

  it('reports the fingerprints ssh-keygen -lf prints, for the public and the private file', async () => {
    const keys = await generateHostKeys(tempDir(), { types: ['ed25519', 'ecdsa', 'rsa'], comment: 'fp' });
    for (const key of keys) {
      expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      expect(await keygenFingerprint(key.publicPath)).toBe(key.fingerprint);
      expect(await keygenFingerprint(key.privatePath)).toBe(key.fingerprint);
    }
    expect(new Set(keys.map((k) => k.fingerprint)).size).toBe(3);
    expect((await run(['ssh-keygen', '-lf', keys[2]!.publicPath])).stdout).toMatch(/^3072 /);
  }, 60_000);

  it('private and public key belong together (ssh-keygen -y derives the same public key)', async () => {
    const [key] = await generateHostKeys(tempDir(), { types: ['ed25519'], comment: 'pair' });
    const { stdout } = await run(['ssh-keygen', '-y', '-f', key!.privatePath]);
    expect(stdout.trim().split(' ').slice(0, 2)).toEqual(key!.publicKey.split(' ').slice(0, 2));
  });

  it('gives every instance its own keys', async () => {
    const a = await generateHostKeys(tempDir(), { comment: 'a' });
    const b = await generateHostKeys(tempDir(), { comment: 'b' });
    const seen = new Set([...a, ...b].map((k) => k.fingerprint));
    expect(seen.size).toBe(a.length + b.length);
  });

  it('never overwrites existing keys (CONFLICT) and leaves them intact', async () => {
    const dir = tempDir();
    const [first] = await generateHostKeys(dir, { types: ['ed25519'], comment: 'x' });
    const before = readFileSync(first!.privatePath, 'utf8');
    await expect(generateHostKeys(dir, { types: ['ed25519'], comment: 'x' })).rejects.toSatisfy((e: unknown) => isVirtnodeError(e, 'CONFLICT'));
    expect(readFileSync(first!.privatePath, 'utf8')).toBe(before);
    // All or nothing: the ecdsa key made alongside the refused one is removed again.
    await expect(generateHostKeys(dir, { types: ['ecdsa', 'ed25519'], comment: 'x' })).rejects.toSatisfy((e: unknown) => isVirtnodeError(e, 'CONFLICT'));
    expect(readdirSync(dir).sort()).toEqual(['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']);
    expect(readFileSync(first!.privatePath, 'utf8')).toBe(before);
  });

  it('rejects bad options before making anything', async () => {
    const dir = join(tempDir(), 'never');
    for (const options of [{ types: [], comment: 'x' }, { types: ['dsa' as 'rsa'], comment: 'x' }, { types: ['ed25519' as const, 'ed25519' as const], comment: 'x' }, { comment: 'two\nlines' }]) {
      await expect(generateHostKeys(dir, options)).rejects.toSatisfy((e: unknown) => isVirtnodeError(e, 'INVALID'));
    }
    expect(() => statSync(dir)).toThrow();
  });

  it('stops when the signal is aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(generateHostKeys(tempDir(), { comment: 'x', signal: controller.signal })).rejects.toThrow();
  });

  it('produces keys cloud-config accepts through renderUserData', async () => {
    const keys = await generateHostKeys(tempDir(), { types: ['ed25519', 'ecdsa', 'rsa'], comment: 'web1' });
    const { text } = renderUserData({
      instanceId: 'i-1',
      hostname: 'web1',
      defaultUser: { name: 'virtnode', sshAuthorizedKeys: [], sudo: true },
      hostKeys: keys.map(({ type, privateKey, publicKey }) => ({ type, privateKey, publicKey })),
      network: { kind: 'dhcp', macs: ['52:54:00:00:00:01'] },
    });
    const result = validateCloudConfig(text);
    expect(result.issues).toEqual([]);
    const sshKeys = result.config?.['ssh_keys'] as Record<string, string>;
    for (const key of keys) {
      expect(sshKeys[`${key.type}_private`]).toBe(key.privateKey);
      expect(sshKeys[`${key.type}_public`]).toBe(key.publicKey);
    }
  }, 60_000);
});

describe('generateUserKey', () => {
  it('makes id_ed25519 (0600) and its public key', async () => {
    const dir = join(tempDir(), 'ssh');
    const key = await generateUserKey(dir, { comment: 'virtnode@test' });
    expect(key.type).toBe('ed25519');
    expect(key.privatePath).toBe(join(dir, 'id_ed25519'));
    expect(mode(key.privatePath)).toBe(0o600);
    expect(mode(key.publicPath)).toBe(0o644);
    expect(mode(dir)).toBe(0o700);
    expect(key.publicKey).toMatch(/^ssh-ed25519 AAAA\S+ virtnode@test$/);
    expect(await keygenFingerprint(key.publicPath)).toBe(key.fingerprint);
    expect(await keygenFingerprint(key.privatePath)).toBe(key.fingerprint);
  });

  it('has a default comment and refuses to replace an existing key', async () => {
    const dir = tempDir();
    const key = await generateUserKey(dir);
    expect(key.publicKey).toMatch(/ virtnode@\S+$/);
    await expect(generateUserKey(dir)).rejects.toSatisfy((e: unknown) => isVirtnodeError(e, 'CONFLICT'));
    expect(readFileSync(key.privatePath, 'utf8')).toBe(key.privateKey);
  });
});
