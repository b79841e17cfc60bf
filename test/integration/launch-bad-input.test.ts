import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';

describe('launch refuses bad input before making anything', () => {
  const { home, cleanup } = tempHome();
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-launch-bad-'));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  let privateKey: string;
  beforeAll(() => {
    privateKey = join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', privateKey]);
  });
  afterAll(() => {
    cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, () => string[], number, RegExp]> = [
    ['an invalid name', () => ['launch', 'img', '--name', 'Not_OK'], 2, /--name: "Not_OK" is not a valid name/],
    ['a private key given as --ssh-key', () => ['launch', 'img', '--ssh-key', privateKey], 2, /--ssh-key: .* is not an OpenSSH public key file\nhint: give the .pub file/],
    ['a missing --ssh-key file', () => ['launch', 'img', '--ssh-key', join(dir, 'nope.pub')], 2, /--ssh-key: .* does not exist/],
    ['invalid cloud-config', () => ['launch', 'img', '--user-data', file('bad.yaml', '#cloud-config\nusers: 42\n')], 2, /--user-data: .* is not a valid cloud-config:\n.*bad\.yaml:2:\d+: error: users/],
    ['YAML that does not parse', () => ['launch', 'img', '--user-data', file('broken.yaml', '#cloud-config\nruncmd: [\n')], 2, /--user-data: .*broken\.yaml:\d+:\d+: error/s],
    ['user-data of no known kind', () => ['launch', 'img', '--user-data', file('plain.txt', 'hello\n')], 2, /is not user-data cloud-init understands/],
    ['network-config without a version', () => ['launch', 'img', '--network-config', file('net.yaml', 'ethernets: {}\n')], 2, /--network-config: .* needs "version: 1" or "version: 2"/],
    ['an unknown time zone', () => ['launch', 'img', '--timezone', 'Mars/Olympus'], 2, /--timezone: "Mars\/Olympus" is not a known time zone/],
    ['a time zone path escape', () => ['launch', 'img', '--timezone', '../../etc/passwd'], 2, /--timezone: .* is not a known time zone/],
    ['a plain password as --password-hash', () => ['launch', 'img', '--password-hash', 'hunter2'], 2, /--password-hash: that is not a crypt\(3\) hash\nhint: make one with: openssl passwd -6/],
    ['an unknown seed format', () => ['launch', 'img', '--seed', 'floppy'], 2, /--seed: "floppy" is not valid\nhint: use iso \(default\), vfat, http, or configdrive/],
    [
      'a network-config with a config drive',
      () => ['launch', 'img', '--seed', 'configdrive', '--network-config', file('net2.yaml', 'version: 2\nethernets: {}\n')],
      2,
      /--network-config: cannot be combined with --seed configdrive/,
    ],
    ['too much memory', () => ['launch', 'img', '--memory', '9999G'], 2, /--memory: 9999G is out of range/],
    ['an unknown image', () => ['launch', 'no-such-image'], 3, /no-such-image/],
  ];

  it.each(cases)('%s', async (_what, args, exitCode, message) => {
    const r = await virtnode(home, args());
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(exitCode);
    expect(r.stderr).not.toContain('hunter2');
    expect((await virtnode(home, ['list', '--format', 'json'])).stdout).toBe('[]\n');
    expect(existsSync(join(home, 'instances')) ? readdirSync(join(home, 'instances')) : []).toEqual([]);
  });
});
