import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
    writeFileSync(`${file}.lock`, '999999999 0\n');
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
