import { createHash, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run } from '../exec/run.ts';
import { isVirtnodeError } from '../lib/errors.ts';
import { hostPattern, removeHost, setHostKeys } from './known-hosts.ts';
import { generateHostKeys } from './ssh-host-keys.ts';
import type { GeneratedKey } from './ssh-host-keys.ts';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-known-hosts-test-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function keysFor(name: string): Promise<GeneratedKey[]> {
  return generateHostKeys(tempDir(), { comment: `${name} host key (virtnode)` });
}

/** `ssh-keygen -F HOST -f FILE`: OpenSSH's own lookup; the `type base64` of each key it finds for HOST. */
async function lookup(file: string, host: string): Promise<string[]> {
  const { stdout, code } = await run(['ssh-keygen', '-F', host, '-f', file], { okCodes: [0, 1] });
  if (code === 1) return [];
  return stdout
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(' ').slice(1, 3).join(' '));
}

const typeAndData = (k: GeneratedKey): string => k.publicKey.split(' ').slice(0, 2).join(' ');

describe('hostPattern', () => {
  it('writes [host]:port except on port 22', () => {
    expect(hostPattern('127.0.0.1', 2222)).toBe('[127.0.0.1]:2222');
    expect(hostPattern('web1')).toBe('web1');
    expect(hostPattern('::1', 2200)).toBe('[::1]:2200');
    expect(() => hostPattern('a b', 22)).toThrow();
    expect(() => hostPattern('web1', 0)).toThrow();
  });
});

describe('setHostKeys', () => {
  it('creates the directory and a 0644 file OpenSSH finds the keys in', async () => {
    const file = join(tempDir(), 'state', 'ssh', 'known_hosts');
    const keys = await keysFor('web1');
    await setHostKeys(file, ['[127.0.0.1]:2222', 'web1'], keys.map((k) => k.publicKey), { marker: 'web1' });
    expect(statSync(file).mode & 0o777).toBe(0o644);
    expect(existsSync(`${file}.lock`)).toBe(false);
    expect(readFileSync(file, 'utf8')).toBe(keys.map((k) => `[127.0.0.1]:2222,web1 ${typeAndData(k)} virtnode:web1\n`).join(''));
    expect(await lookup(file, '[127.0.0.1]:2222')).toEqual(keys.map(typeAndData));
    expect(await lookup(file, 'web1')).toEqual(keys.map(typeAndData));
    expect(await lookup(file, '[127.0.0.1]:2223')).toEqual([]);
    expect(await lookup(file, '127.0.0.1')).toEqual([]);
  }, 30_000);

  it("replaces one instance's lines and leaves every other line byte for byte", async () => {
    const file = join(tempDir(), 'known_hosts');
    const handWritten = '# added by hand\ngit.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHandWrittenHandWrittenHandWrittenHandWrit\n';
    writeFileSync(file, handWritten);
    const [web1a, db1, web1b] = await Promise.all([keysFor('web1'), keysFor('db1'), keysFor('web1')]);
    await setHostKeys(file, ['[127.0.0.1]:2222'], web1a!.map((k) => k.publicKey), { marker: 'web1' });
    await setHostKeys(file, ['[127.0.0.1]:2223', 'db1'], db1!.map((k) => k.publicKey), { marker: 'db1' });
    const db1Lines = db1!.map((k) => `[127.0.0.1]:2223,db1 ${typeAndData(k)} virtnode:db1\n`).join('');
    expect(readFileSync(file, 'utf8')).toContain(db1Lines);

    await setHostKeys(file, ['[127.0.0.1]:2224'], web1b!.map((k) => k.publicKey), { marker: 'web1' });
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith(handWritten)).toBe(true);
    expect(text).toContain(db1Lines);
    expect(text).not.toContain(typeAndData(web1a![0]!));
    expect(await lookup(file, '[127.0.0.1]:2222')).toEqual([]);
    expect(await lookup(file, '[127.0.0.1]:2224')).toEqual(web1b!.map(typeAndData));
    expect(await lookup(file, 'db1')).toEqual(db1!.map(typeAndData));
    expect(await lookup(file, 'git.example.org')).toHaveLength(1);
  }, 30_000);

  it('takes a reused host pattern away from the stale line of another instance', async () => {
    const file = join(tempDir(), 'known_hosts');
    const [old, fresh] = await Promise.all([keysFor('old'), keysFor('new')]);
    await setHostKeys(file, ['[127.0.0.1]:2222', 'old'], old!.map((k) => k.publicKey), { marker: 'old' });
    await setHostKeys(file, ['[127.0.0.1]:2222'], fresh!.map((k) => k.publicKey), { marker: 'new' });
    // ssh trusts any matching line: the old instance's keys must no longer be accepted for the reused port.
    expect(await lookup(file, '[127.0.0.1]:2222')).toEqual(fresh!.map(typeAndData));
    expect(await lookup(file, 'old')).toEqual(old!.map(typeAndData));
    await removeHost(file, 'old');
    expect(await lookup(file, 'old')).toEqual([]);
    expect(await lookup(file, '[127.0.0.1]:2222')).toEqual(fresh!.map(typeAndData));
  }, 30_000);

  it('loses no line when many instances are set at once', async () => {
    const file = join(tempDir(), 'known_hosts');
    const [keys] = await Promise.all([keysFor('many')]);
    const names = Array.from({ length: 20 }, (_, i) => `vm${i}`);
    await Promise.all(names.map((name, i) => setHostKeys(file, [`[127.0.0.1]:${3000 + i}`], [keys![0]!.publicKey], { marker: name })));
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(20);
    for (const [i, name] of names.entries()) expect(lines).toContain(`[127.0.0.1]:${3000 + i} ${typeAndData(keys![0]!)} virtnode:${name}`);
  }, 30_000);

  it('takes over the lock of a dead process', async () => {
    const file = join(tempDir(), 'known_hosts');
    // No process has this pid: the lock was left behind by a crashed writer.
    writeFileSync(`${file}.lock`, JSON.stringify({ pid: 999999999, start: '0' }));
    const keys = await keysFor('web1');
    await setHostKeys(file, ['web1'], [keys[0]!.publicKey], { marker: 'web1' });
    expect(await lookup(file, 'web1')).toEqual([typeAndData(keys[0]!)]);
    expect(existsSync(`${file}.lock`)).toBe(false);
  });

  it('rejects bad input and changes nothing', async () => {
    const file = join(tempDir(), 'known_hosts');
    const keys = await keysFor('web1');
    const pub = keys[0]!.publicKey;
    const cases: Array<[string[], string[], string, string]> = [
      [[], [pub], 'web1', 'hostPatterns'],
      [['web 1'], [pub], 'web1', 'hostPatterns'],
      [['a,b'], [pub], 'web1', 'hostPatterns'],
      [['@revoked'], [pub], 'web1', 'hostPatterns'],
      [['web1'], [], 'web1', 'publicKeys'],
      [['web1'], ['ssh-ed25519'], 'web1', 'publicKeys[0]'],
      [['web1'], ['not-a-type AAAA'], 'web1', 'publicKeys[0]'],
      [['web1'], [pub], 'web 1', 'marker'],
    ];
    for (const [patterns, pubs, marker, field] of cases) {
      await expect(setHostKeys(file, patterns, pubs, { marker })).rejects.toSatisfy((e: unknown) => isVirtnodeError(e, 'INVALID') && e.field === field);
    }
    expect(existsSync(file)).toBe(false);
  });
});

describe('removeHost', () => {
  it("removes only that instance's lines", async () => {
    const file = join(tempDir(), 'known_hosts');
    const [a, b] = await Promise.all([keysFor('a'), keysFor('b')]);
    await setHostKeys(file, ['[127.0.0.1]:2222', 'a'], a!.map((k) => k.publicKey), { marker: 'a' });
    await setHostKeys(file, ['[127.0.0.1]:2223', 'b'], b!.map((k) => k.publicKey), { marker: 'b' });
    const bLines = readFileSync(file, 'utf8').split('\n').filter((l) => l.endsWith(' virtnode:b'));
    await removeHost(file, 'a');
    expect(await lookup(file, '[127.0.0.1]:2222')).toEqual([]);
    expect(await lookup(file, 'a')).toEqual([]);
    expect(readFileSync(file, 'utf8')).toBe(`${bLines.join('\n')}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o644);
    await removeHost(file, 'a'); // again: nothing to do
    expect(readFileSync(file, 'utf8')).toBe(`${bLines.join('\n')}\n`);
  }, 30_000);

  it('leaves a missing file missing', async () => {
    const file = join(tempDir(), 'none', 'known_hosts');
    await removeHost(file, 'web1');
    expect(existsSync(file)).toBe(false);
  });
});

// ------------------------------------------------------------------------------------------------ end to end

/**
 * Just enough of an SSH server (RFC 4253 transport, curve25519-sha256 key exchange, ssh-ed25519 host key) for the
 * real OpenSSH client to receive and verify our host key, then hang up after its NEWKEYS. No sshd is needed:
 * what is tested is the client's strict host key check against the known_hosts file virtnode wrote.
 */
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
const sshString = (data: Buffer | string): Buffer => {
  const b = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([u32(b.length), b]);
};
function mpint(raw: Buffer): Buffer {
  let i = 0;
  while (i < raw.length && raw[i] === 0) i++;
  const trimmed = raw.subarray(i);
  return sshString(trimmed.length > 0 && (trimmed[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}
function packet(payload: Buffer): Buffer {
  let padding = 8 - ((5 + payload.length) % 8);
  if (padding < 4) padding += 8;
  return Buffer.concat([u32(1 + payload.length + padding), Buffer.from([padding]), payload, randomBytes(padding)]);
}

/** The ed25519 key pair inside an unencrypted `openssh-key-v1` private key file. */
function readOpenSshEd25519(text: string): { privateKey: KeyObject; publicRaw: Buffer } {
  const body = Buffer.from(text.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const magic = 'openssh-key-v1\0';
  expect(body.subarray(0, magic.length).toString('latin1')).toBe(magic);
  let at = magic.length;
  const next = (): Buffer => {
    const len = body.readUInt32BE(at);
    const out = body.subarray(at + 4, at + 4 + len);
    at += 4 + len;
    return out;
  };
  expect(next().toString()).toBe('none'); // cipher
  next(); // kdf
  next(); // kdf options
  at += 4; // number of keys
  next(); // public key blob
  const priv = next();
  let p = 8; // two check words
  const field = (): Buffer => {
    const len = priv.readUInt32BE(p);
    const out = priv.subarray(p + 4, p + 4 + len);
    p += 4 + len;
    return out;
  };
  expect(field().toString()).toBe('ssh-ed25519');
  const publicRaw = field();
  const secret = field(); // seed (32) + public (32)
  const privateKey = createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: secret.subarray(0, 32).toString('base64url'), x: publicRaw.toString('base64url') },
    format: 'jwk',
  });
  return { privateKey, publicRaw };
}

async function fakeSshServer(hostKeyPrivate: string): Promise<{ port: number; close: () => Promise<void> }> {
  const hostKey = readOpenSshEd25519(hostKeyPrivate);
  const hostKeyBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(hostKey.publicRaw)]);
  const serverVersion = 'SSH-2.0-virtnode_test';
  const server = createServer((socket) => {
    socket.on('error', () => {});
    const serverKexinit = Buffer.concat([
      Buffer.from([20]),
      randomBytes(16),
      ...['curve25519-sha256,curve25519-sha256@libssh.org', 'ssh-ed25519', 'aes128-ctr', 'aes128-ctr', 'hmac-sha2-256', 'hmac-sha2-256', 'none', 'none', '', ''].map(
        (s) => sshString(s),
      ),
      Buffer.from([0]),
      u32(0),
    ]);
    socket.write(`${serverVersion}\r\n`);
    socket.write(packet(serverKexinit));
    let buffer = Buffer.alloc(0);
    let clientVersion: string | undefined;
    let clientKexinit: Buffer | undefined;
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (clientVersion === undefined) {
        const nl = buffer.indexOf('\n');
        if (nl === -1) return;
        clientVersion = buffer.subarray(0, nl).toString('latin1').replace(/\r$/, '');
        buffer = buffer.subarray(nl + 1);
      }
      while (buffer.length >= 4 && buffer.length >= 4 + buffer.readUInt32BE(0)) {
        const len = buffer.readUInt32BE(0);
        const payload = buffer.subarray(5, 4 + len - buffer[4]!);
        buffer = buffer.subarray(4 + len);
        const type = payload[0];
        if (type === 20) clientKexinit = Buffer.from(payload);
        else if (type === 30 && clientKexinit !== undefined) {
          const qc = payload.subarray(5, 5 + payload.readUInt32BE(1));
          const ephemeral = generateKeyPairSync('x25519');
          const qs = Buffer.from(ephemeral.publicKey.export({ format: 'jwk' }).x!, 'base64url');
          const shared = diffieHellman({
            privateKey: ephemeral.privateKey,
            publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: qc.toString('base64url') }, format: 'jwk' }),
          });
          const exchangeHash = createHash('sha256')
            .update(
              Buffer.concat([sshString(clientVersion), sshString(serverVersion), sshString(clientKexinit), sshString(serverKexinit), sshString(hostKeyBlob), sshString(qc), sshString(qs), mpint(shared)]),
            )
            .digest();
          const signature = Buffer.concat([sshString('ssh-ed25519'), sshString(sign(null, exchangeHash, hostKey.privateKey))]);
          socket.write(packet(Buffer.concat([Buffer.from([31]), sshString(hostKeyBlob), sshString(qs), sshString(signature)])));
        } else if (type === 21) {
          socket.destroy(); // the client accepted the host key and sent NEWKEYS: that is all this test needs
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return { port: address.port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** The real OpenSSH client, strict host key checking, only virtnode's known_hosts. Its verbose log. */
async function sshConnect(knownHosts: string, port: number): Promise<string> {
  const { stderr } = await run(
    [
      'ssh',
      '-F', '/dev/null',
      '-v',
      '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'HostKeyAlgorithms=ssh-ed25519',
      '-o', 'ConnectTimeout=10',
      '-p', String(port),
      'virtnode@127.0.0.1',
      'true',
    ],
    { okCodes: [255], timeoutMs: 30_000 },
  );
  return stderr;
}

describe('strict host key verification by the OpenSSH client (no VM, no sshd)', () => {
  it('accepts the host key from the first connection, refuses other or unknown keys', async () => {
    const dir = tempDir();
    const file = join(dir, 'known_hosts');
    const [web1, other] = await Promise.all([keysFor('web1'), keysFor('other')]);
    const server = await fakeSshServer(web1![0]!.privateKey);
    try {
      const pattern = hostPattern('127.0.0.1', server.port);

      writeFileSync(file, '');
      const unknown = await sshConnect(file, server.port);
      expect(unknown).toMatch(/No ED25519 host key is known for|Host key verification failed/);

      await setHostKeys(file, [pattern, 'web1'], web1!.map((k) => k.publicKey), { marker: 'web1' });
      const known = await sshConnect(file, server.port);
      expect(known).toContain(`Host '${pattern}' is known and matches the ED25519 host key.`);
      expect(known).toContain(`Server host key: ssh-ed25519 ${web1![0]!.fingerprint}`);
      expect(known).not.toContain('Host key verification failed');
      // The exchange-hash signature checked out too: the client moved on to NEWKEYS.
      expect(known).toContain('SSH2_MSG_NEWKEYS sent');

      // The port now belongs to another instance whose key differs: the client must refuse.
      await setHostKeys(file, [pattern], other!.map((k) => k.publicKey), { marker: 'other' });
      const changed = await sshConnect(file, server.port);
      expect(changed).toContain('REMOTE HOST IDENTIFICATION HAS CHANGED');
      expect(changed).toContain('Host key verification failed');
      expect(changed).not.toContain('SSH2_MSG_NEWKEYS sent');
    } finally {
      await server.close();
    }
  }, 60_000);
});
