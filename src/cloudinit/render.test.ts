import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { run } from '../exec/run.ts';
import { isVirtnodeError } from '../lib/errors.ts';
import { renderMetaData, renderNetworkConfig, renderUserData, userDataContentType } from './render.ts';
import type { SeedRequest } from './render.ts';
import { validateCloudConfig } from './validate.ts';

// Shaped like OpenSSH keys but not keys: golden files must not change between runs and hold no real secret.
const ED25519_PRIVATE = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACBGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRQAAAJhGQUtFRkFL\n-----END OPENSSH PRIVATE KEY-----\n';
const ED25519_PUBLIC = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtF web1 host key (virtnode)';
const ECDSA_PRIVATE = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAaAAAABNlY2RzYS\n1zaGEyLW5pc3RwMjU2AAAACG5pc3RwMjU2AAAAQQRGQUtFRkFLRUZBS0VGQUtFRkFLRUZB\n-----END OPENSSH PRIVATE KEY-----\n';
const ECDSA_PUBLIC =
  'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0U= web1 host key (virtnode)';
const CLIENT_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIENMSUVOVENMSUVOVENMSUVOVENMSUVOVENMSUVOVENM virtnode@host';
const ALICE_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEFMSUNFQUxJQ0VBTElDRUFMSUNFQUxJQ0VBTElDRUFM alice@laptop';
const SHA512_HASH = '$6$rounds=4096$c2FsdHNhbHQ$Q0ZWzS3cW5Yq8mH6w0m3mJ8pN1yB2xT7vR4sD9eF0gH1iJ2kL3mN4oP5qR6sT7uV8wX9yZ0aB1cD2eF3gH4iJ5k';

const minimal: SeedRequest = {
  instanceId: 'i-3f0c2a9e-5d7b-4c1a-9e8f-0a1b2c3d4e5f',
  hostname: 'web1',
  defaultUser: { name: 'virtnode', sshAuthorizedKeys: [CLIENT_KEY], sudo: true },
  hostKeys: [{ type: 'ed25519', privateKey: ED25519_PRIVATE, publicKey: ED25519_PUBLIC }],
  network: { kind: 'dhcp', macs: ['52:54:00:12:34:56'] },
};

const full: SeedRequest = {
  ...minimal,
  fqdn: 'web1.example.org',
  timezone: 'Europe/Berlin',
  defaultUser: { name: 'alice', sshAuthorizedKeys: [CLIENT_KEY, ALICE_KEY], passwordHash: SHA512_HASH, sudo: true },
  hostKeys: [
    { type: 'ecdsa', privateKey: ECDSA_PRIVATE, publicKey: ECDSA_PUBLIC },
    { type: 'ed25519', privateKey: ED25519_PRIVATE, publicKey: ED25519_PUBLIC },
  ],
};

const USER_CLOUD_CONFIG = `#cloud-config
# the user's own settings
hostname: custom-name   # the user's key wins
timezone: UTC
package_update: true
users:
  - default
  - name: bob
    shell: /bin/sh
    ssh_authorized_keys: ['${ALICE_KEY}']
ssh_authorized_keys:
  - ${ALICE_KEY}
ssh_keys:
  ed25519_private: |
    -----BEGIN OPENSSH PRIVATE KEY-----
    not ours
    -----END OPENSSH PRIVATE KEY-----
  ed25519_public: ssh-ed25519 AAAAnotours
write_files:
  - path: /etc/motd
    permissions: '0644'
    content: |
      hello
runcmd:
  - [sh, -c, 'echo "booted $(hostname)" > /run/booted']
  - touch /run/second
`;

const SCRIPT = '#!/bin/sh\nset -eu\necho "hello from $(hostname)" > /run/hello\n';

const GOLDEN_DIR = new URL('./testdata/render/', import.meta.url);

function golden(name: string, text: string): void {
  const path = new URL(name, GOLDEN_DIR);
  if (process.env['UPDATE_GOLDEN'] === '1') {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(path, text);
  }
  expect(text).toBe(readFileSync(path, 'utf8'));
}

const tmpDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-render-test-'));
  tmpDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

/** Parses as PyYAML does (YAML 1.1). */
function yaml11(text: string): Record<string, unknown> {
  return parse(text, { version: '1.1' }) as Record<string, unknown>;
}

function expectInvalid(fn: () => unknown, field: string): Error {
  try {
    fn();
  } catch (e) {
    expect(isVirtnodeError(e, 'INVALID'), String(e)).toBe(true);
    expect((e as { field?: string }).field).toBe(field);
    return e as Error;
  }
  throw new Error(`expected an INVALID error for ${field}`);
}

/** cloud-init's own user-data processor (the guest's code): each part's resolved type, file name and payload. */
async function cloudInitParts(userData: string, options: { process: boolean } = { process: true }): Promise<Array<{ type: string; filename: string | null; payload: string }>> {
  requireCloudInit();
  const script = [
    'import json, sys',
    'from cloudinit import helpers, user_data',
    // process() also acts on parts (fetches #include URLs); convert_string() only parses, as the guest does first.
    options.process
      ? 'msg = user_data.UserDataProcessor(helpers.Paths({})).process(sys.stdin.read())'
      : 'msg = user_data.convert_string(sys.stdin.read())',
    'out = []',
    'for part in msg.walk():',
    '    if part.get_content_maintype() == "multipart": continue',
    '    out.append({"type": part.get_content_type(), "filename": part.get_filename(), "payload": part.get_payload(decode=True).decode()})',
    'print(json.dumps(out))',
  ].join('\n');
  const { stdout } = await run(['/usr/bin/python3', '-c', script], { input: userData, timeoutMs: 30_000 });
  return JSON.parse(stdout) as Array<{ type: string; filename: string | null; payload: string }>;
}

/** The config cloud-init makes of user-data: its own part handler merging every cloud-config part in order. */
async function cloudInitMerged(userData: string): Promise<Record<string, unknown>> {
  requireCloudInit();
  const script = [
    'import json, sys',
    'from cloudinit import handlers, helpers, user_data',
    'from cloudinit.handlers.cloud_config import CloudConfigPartHandler',
    'msg = user_data.UserDataProcessor(helpers.Paths({})).process(sys.stdin.read())',
    'h = CloudConfigPartHandler(helpers.Paths({}))',
    'h.handle_part(None, handlers.CONTENT_START, None, None, None, None)',
    'for part in msg.walk():',
    '    if part.get_content_type() != "text/cloud-config": continue',
    '    h.handle_part(None, part.get_content_type(), part.get_filename() or "", part.get_payload(decode=True).decode(), 0, dict(part))',
    'print(json.dumps(h.cloud_buf))',
  ].join('\n');
  const { stdout, stderr } = await run(['/usr/bin/python3', '-c', script], { input: userData, timeoutMs: 30_000 });
  expect(stderr).not.toMatch(/Failed at merging/);
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** The cloud-config parts of rendered user-data, as text (virtnode's own parts are 7bit). */
function cloudConfigParts(userData: string): string[] {
  if (userData.startsWith('#cloud-config\n')) return [userData];
  const boundary = /^Content-Type: multipart\/mixed; boundary="([^"]+)"\n/.exec(userData)?.[1];
  if (boundary === undefined) throw new Error('not a multipart/mixed message');
  const sections = userData.split(`--${boundary}`).slice(1, -1);
  return sections
    .map((section) => section.slice(1, -1)) // the line breaks around each delimiter belong to it
    .map((part) => {
      const blank = part.indexOf('\n\n');
      return { headers: part.slice(0, blank), body: part.slice(blank + 2) };
    })
    .filter((p) => p.headers.startsWith('Content-Type: text/cloud-config;'))
    .map((p) => p.body);
}

function requireCloudInit(): void {
  if (!existsSync('/usr/bin/cloud-init')) {
    throw new Error('cloud-init is not installed; these tests check the output with cloud-init itself: install it with: apt-get install cloud-init');
  }
}

describe('renderMetaData', () => {
  it('writes instance-id and local-hostname (golden)', () => {
    const text = renderMetaData(minimal);
    golden('minimal.meta-data', text);
    expect(yaml11(text)).toEqual({ 'instance-id': minimal.instanceId, 'local-hostname': 'web1' });
  });

  it('quotes a hostname YAML 1.1 would read as a boolean', () => {
    expect(yaml11(renderMetaData({ ...minimal, hostname: 'on' }))['local-hostname']).toBe('on');
  });
});

describe('renderUserData: virtnode base', () => {
  it('minimal: default user with key and sudo, locked password, host key (golden)', () => {
    const { text, kind } = renderUserData(minimal);
    expect(kind).toBe('cloud-config');
    golden('minimal.user-data', text);
    const cfg = yaml11(text);
    expect(cfg).toMatchObject({
      hostname: 'web1',
      manage_etc_hosts: true,
      ssh_pwauth: false,
      ssh_deletekeys: true,
      users: [{ name: 'virtnode', sudo: 'ALL=(ALL) NOPASSWD:ALL', lock_passwd: true, ssh_authorized_keys: [CLIENT_KEY] }],
      ssh_keys: { ed25519_private: ED25519_PRIVATE, ed25519_public: ED25519_PUBLIC },
    });
    expect(cfg).not.toHaveProperty('fqdn');
    expect(cfg).not.toHaveProperty('timezone');
    expect(cfg).not.toHaveProperty('ssh_genkeytypes');
  });

  it('with fqdn, timezone, password hash and two host keys (golden)', () => {
    const { text } = renderUserData(full);
    golden('full.user-data', text);
    const cfg = yaml11(text);
    expect(cfg).toMatchObject({
      fqdn: 'web1.example.org',
      timezone: 'Europe/Berlin',
      ssh_pwauth: false,
      users: [{ name: 'alice', lock_passwd: false, hashed_passwd: SHA512_HASH, ssh_authorized_keys: [CLIENT_KEY, ALICE_KEY] }],
      ssh_keys: { ecdsa_private: ECDSA_PRIVATE, ecdsa_public: ECDSA_PUBLIC, ed25519_private: ED25519_PRIVATE, ed25519_public: ED25519_PUBLIC },
    });
  });

  it('leaves out sudo when not asked for', () => {
    const users = yaml11(renderUserData({ ...minimal, defaultUser: { ...minimal.defaultUser, sudo: false } }).text)['users'] as Array<Record<string, unknown>>;
    expect(users[0]).not.toHaveProperty('sudo');
  });

  it('refuses a plaintext password without repeating it', () => {
    const e = expectInvalid(() => renderUserData({ ...minimal, defaultUser: { ...minimal.defaultUser, passwordHash: 'hunter2' } }), 'defaultUser.passwordHash');
    expect(e.message).not.toContain('hunter2');
  });

  it('refuses requests without host keys, with a bad hostname or a multi-line field', () => {
    expectInvalid(() => renderUserData({ ...minimal, hostKeys: [] }), 'hostKeys');
    expectInvalid(() => renderUserData({ ...minimal, hostname: 'web_1' }), 'hostname');
    expectInvalid(() => renderUserData({ ...minimal, fqdn: 'web1' }), 'fqdn');
    expectInvalid(() => renderUserData({ ...minimal, timezone: 'UTC\nruncmd: [reboot]' }), 'timezone');
    expectInvalid(() => renderUserData({ ...minimal, defaultUser: { ...minimal.defaultUser, name: 'Bad User' } }), 'defaultUser.name');
    expectInvalid(() => renderUserData({ ...minimal, hostKeys: [minimal.hostKeys[0]!, minimal.hostKeys[0]!] }), 'hostKeys[1].type');
  });

  it('is deterministic', () => {
    expect(renderUserData(full).text).toBe(renderUserData(structuredClone(full)).text);
  });
});

describe('renderUserData without secrets (what a guest may still read after its first boot)', () => {
  const secretsOf = (text: string) => [ED25519_PRIVATE.split('\n')[1]!, ECDSA_PRIVATE.split('\n')[1]!, SHA512_HASH].filter((secret) => text.includes(secret));

  it('has no host private key and no password hash, and is otherwise the same', () => {
    const withSecrets = yaml11(renderUserData({ ...full, userData: USER_CLOUD_CONFIG }).text) as Record<string, unknown>;
    const { text } = renderUserData({ ...full, userData: USER_CLOUD_CONFIG }, { withSecrets: false });
    expect(secretsOf(renderUserData({ ...full, userData: USER_CLOUD_CONFIG }).text)).toHaveLength(3);
    expect(secretsOf(text)).toEqual([]);
    const { ssh_keys: _keys, users, ...rest } = withSecrets;
    const without = yaml11(text) as Record<string, unknown>;
    expect(without).toEqual({ ...rest, users: expect.any(Array) });
    const alice = (without['users'] as Array<Record<string, unknown>>).find((u) => u['name'] === 'alice');
    expect(alice).toMatchObject({ lock_passwd: false, ssh_authorized_keys: [CLIENT_KEY, ALICE_KEY] });
    expect(alice).not.toHaveProperty('hashed_passwd');
  });

  it('in a MIME multipart too: no host-keys part', async () => {
    const { text } = renderUserData({ ...full, userData: SCRIPT }, { withSecrets: false });
    expect(secretsOf(text)).toEqual([]);
    expect((await cloudInitParts(text)).map((p) => p.filename)).toEqual(['user-script', 'virtnode.cfg']);
  });
});

describe('renderUserData: merging the user cloud-config', () => {
  const merged = () => renderUserData({ ...full, userData: USER_CLOUD_CONFIG });

  it('keeps the user keys, appends the default user, takes ssh_keys from virtnode (golden)', () => {
    const { text, kind } = merged();
    expect(kind).toBe('cloud-config');
    golden('merged.user-data', text);
    const cfg = yaml11(text);
    expect(cfg['hostname']).toBe('custom-name');
    expect(cfg['timezone']).toBe('UTC');
    expect(cfg['fqdn']).toBe('web1.example.org');
    expect(cfg['package_update']).toBe(true);
    expect(cfg['runcmd']).toEqual([['sh', '-c', 'echo "booted $(hostname)" > /run/booted'], 'touch /run/second']);
    expect(cfg['write_files']).toEqual([{ path: '/etc/motd', permissions: '0644', content: 'hello\n' }]);
    expect(cfg['ssh_authorized_keys']).toEqual([ALICE_KEY]);
    const users = cfg['users'] as unknown[];
    expect(users.slice(0, 2)).toEqual(['default', { name: 'bob', shell: '/bin/sh', ssh_authorized_keys: [ALICE_KEY] }]);
    expect(users[2]).toMatchObject({ name: 'alice', hashed_passwd: SHA512_HASH });
    expect(users).toHaveLength(3);
    expect(cfg['ssh_keys']).toEqual({ ecdsa_private: ECDSA_PRIVATE, ecdsa_public: ECDSA_PUBLIC, ed25519_private: ED25519_PRIVATE, ed25519_public: ED25519_PUBLIC });
    expect(text).not.toContain('not ours');
    expect(text).toContain("# the user's key wins");
  });

  it("does not add the default user when the user's list already names it", () => {
    const userData = '#cloud-config\nusers:\n  - name: virtnode\n    shell: /bin/zsh\n';
    const users = yaml11(renderUserData({ ...minimal, userData }).text)['users'];
    expect(users).toEqual([{ name: 'virtnode', shell: '/bin/zsh' }]);
    const plain = yaml11(renderUserData({ ...minimal, userData: '#cloud-config\nusers: [default, virtnode]\n' }).text)['users'];
    expect(plain).toEqual(['default', 'virtnode']);
  });

  it('turns a comma-separated users string into a list and adds the default user', () => {
    const users = yaml11(renderUserData({ ...minimal, userData: '#cloud-config\nusers: default, bob\n' }).text)['users'] as unknown[];
    expect(users.slice(0, 2)).toEqual(['default', 'bob']);
    expect(users[2]).toMatchObject({ name: 'virtnode' });
  });

  it('adds the default user to the mapping form and to a list behind an alias', () => {
    const mapped = yaml11(renderUserData({ ...minimal, userData: '#cloud-config\nusers:\n  bob: {shell: /bin/sh}\n' }).text)['users'] as Record<string, unknown>;
    expect(Object.keys(mapped)).toEqual(['bob', 'virtnode']);
    expect(mapped['virtnode']).toMatchObject({ sudo: 'ALL=(ALL) NOPASSWD:ALL', ssh_authorized_keys: [CLIENT_KEY] });
    expect(mapped['virtnode']).not.toHaveProperty('name');
    const aliased = yaml11(renderUserData({ ...minimal, userData: '#cloud-config\nx-people: &people [default, bob]\nusers: *people\n' }).text);
    expect(aliased['x-people']).toEqual(['default', 'bob']);
    expect((aliased['users'] as unknown[]).slice(0, 2)).toEqual(['default', 'bob']);
    expect((aliased['users'] as unknown[])[2]).toMatchObject({ name: 'virtnode' });
  });

  it('accepts an empty user cloud-config and YAML 1.1 scalars the user wrote', () => {
    expect(yaml11(renderUserData({ ...minimal, userData: '#cloud-config\n' }).text)).toEqual(yaml11(renderUserData(minimal).text));
    const cfg = yaml11(renderUserData({ ...minimal, userData: '#cloud-config\npackage_upgrade: yes\n' }).text);
    expect(cfg['package_upgrade']).toBe(true);
  });
});

describe('renderUserData: other user-data kinds become MIME multipart', () => {
  it('packs a shell script with the base cloud-config (golden), as cloud-init reads it', async () => {
    const { text, kind } = renderUserData({ ...minimal, userData: SCRIPT });
    expect(kind).toBe('mime');
    golden('script.user-data', text);
    const parts = await cloudInitParts(text);
    expect(parts.map((p) => [p.type, p.filename])).toEqual([
      ['text/x-shellscript', 'user-script'],
      ['text/cloud-config', 'virtnode.cfg'],
      ['text/cloud-config', 'virtnode-host-keys.cfg'],
    ]);
    expect(parts[0]?.payload).toBe(SCRIPT);
    // What cloud-init finally applies is exactly virtnode's base.
    expect(await cloudInitMerged(text)).toEqual(yaml11(renderUserData(minimal).text));
  });

  it('derives the boundary from the instance-id', () => {
    const a = renderUserData({ ...minimal, userData: SCRIPT }).text;
    const b = renderUserData({ ...minimal, instanceId: 'i-other', userData: SCRIPT }).text;
    const boundary = (t: string) => /boundary="([^"]+)"/.exec(t)?.[1];
    expect(boundary(a)).toBeDefined();
    expect(boundary(a)).not.toBe(boundary(b));
  });

  it('gives #include, boothook and jinja their content types; non-ASCII text goes base64', async () => {
    const include = await cloudInitParts(renderUserData({ ...minimal, userData: '#include\nhttps://example.org/a\n' }).text, { process: false });
    expect(include[0]?.type).toBe('text/x-include-url');
    const boothook = await cloudInitParts(renderUserData({ ...minimal, userData: '#cloud-boothook\necho hi\n' }).text);
    expect(boothook[0]?.type).toBe('text/cloud-boothook');
    expect(userDataContentType('## template: jinja\n#cloud-config\n')).toBe('text/jinja2');
    expect(userDataContentType('#include-once\nhttps://x\n')).toBe('text/x-include-once-url');
    const utf8 = '#!/bin/sh\necho "grüße" > /run/hi\n';
    const rendered = renderUserData({ ...minimal, userData: utf8 }).text;
    expect(rendered).toContain('Content-Transfer-Encoding: base64');
    expect((await cloudInitParts(rendered))[0]?.payload).toBe(utf8);
  });

  it("nests the user's own MIME multipart whole", async () => {
    const userMime = [
      'Content-Type: multipart/mixed; boundary="USERBOUNDARY"',
      'MIME-Version: 1.0',
      '',
      '--USERBOUNDARY',
      'Content-Type: text/x-shellscript; charset="us-ascii"',
      '',
      '#!/bin/sh',
      'echo one',
      '',
      '--USERBOUNDARY',
      'Content-Type: text/cloud-config; charset="us-ascii"',
      '',
      '#cloud-config',
      'hostname: theirs',
      'users: [default, {name: bob}]',
      'runcmd: [touch /run/two]',
      'ssh_keys: {ed25519_public: ssh-ed25519 AAAAnotours}',
      '',
      '--USERBOUNDARY--',
      '',
    ].join('\n');
    const { text, kind } = renderUserData({ ...minimal, userData: userMime });
    expect(kind).toBe('mime');
    golden('mime.user-data', text);
    const parts = await cloudInitParts(text);
    expect(parts.map((p) => p.type)).toEqual(['text/x-shellscript', 'text/cloud-config', 'text/cloud-config', 'text/cloud-config']);
    expect(parts[0]?.payload).toBe('#!/bin/sh\necho one\n');
    // cloud-init's own merge of the parts gives what merging the same cloud-config directly gives.
    const direct = '#cloud-config\nhostname: theirs\nusers: [default, {name: bob}]\nruncmd: [touch /run/two]\nssh_keys: {ed25519_public: ssh-ed25519 AAAAnotours}\n';
    const merged = await cloudInitMerged(text);
    expect(merged).toEqual(yaml11(renderUserData({ ...minimal, userData: direct }).text));
    expect(merged['hostname']).toBe('theirs');
    expect(merged['users']).toEqual(['default', { name: 'bob' }, expect.objectContaining({ name: 'virtnode' })]);
    expect(merged['ssh_keys']).toEqual({ ed25519_private: ED25519_PRIVATE, ed25519_public: ED25519_PUBLIC });
  });
});

describe('rendered cloud-config is valid', () => {
  const requests: Array<[string, SeedRequest]> = [
    ['minimal', minimal],
    ['full', full],
    ['merged', { ...full, userData: USER_CLOUD_CONFIG }],
    ['script', { ...full, userData: SCRIPT }],
    ['no sudo', { ...minimal, defaultUser: { name: 'virtnode', sshAuthorizedKeys: [], sudo: false } }],
  ];

  it('for virtnode validateCloudConfig (no errors, no warnings)', () => {
    for (const [name, req] of requests) {
      for (const part of cloudConfigParts(renderUserData(req).text)) {
        const result = validateCloudConfig(part);
        expect(result.issues, `${name}: ${JSON.stringify(result.issues)}`).toEqual([]);
        expect(result.ok).toBe(true);
      }
    }
  });

  it('for `cloud-init schema -c FILE`', async () => {
    requireCloudInit();
    const dir = tempDir();
    for (const [name, req] of requests) {
      const parts = cloudConfigParts(renderUserData(req).text);
      expect(parts.length).toBeGreaterThan(0);
      for (const [i, part] of parts.entries()) {
        const file = join(dir, `${name.replace(/\W/g, '-')}-${i}.cfg`);
        writeFileSync(file, part, { mode: 0o600 });
        const { stdout } = await run(['/usr/bin/cloud-init', 'schema', '-c', file], { timeoutMs: 60_000 });
        expect(stdout, name).toMatch(/Valid cloud-config/);
      }
    }
  }, 120_000);
});

describe('renderNetworkConfig', () => {
  /** cloud-init's own converter (the guest's code), to systemd-networkd files. */
  async function toNetworkd(text: string): Promise<string> {
    requireCloudInit();
    const dir = tempDir();
    writeFileSync(join(dir, 'network-config'), text);
    await run(['/usr/bin/cloud-init', 'devel', 'net-convert', '-p', join(dir, 'network-config'), '-k', 'yaml', '-d', join(dir, 'out'), '-D', 'debian', '-O', 'networkd'], {
      timeoutMs: 60_000,
    });
    const netDir = join(dir, 'out', 'etc', 'systemd', 'network');
    return readdirSync(netDir)
      .sort()
      .map((f) => `## ${f}\n${readFileSync(join(netDir, f), 'utf8')}`)
      .join('\n');
  }

  it('dhcp on two NICs matched by MAC, lower case, named eth0 and eth1 (golden)', async () => {
    const text = renderNetworkConfig({ ...minimal, network: { kind: 'dhcp', macs: ['52:54:00:12:34:56', '52:54:00:AB:CD:EF'] } });
    golden('dhcp-two-nics.network-config', text);
    expect(yaml11(text)).toEqual({
      version: 2,
      ethernets: {
        eth0: { match: { macaddress: '52:54:00:12:34:56' }, 'set-name': 'eth0', dhcp4: true, 'dhcp-identifier': 'mac' },
        eth1: { match: { macaddress: '52:54:00:ab:cd:ef' }, 'set-name': 'eth1', dhcp4: true, 'dhcp-identifier': 'mac' },
      },
    });
    const networkd = await toNetworkd(text);
    expect(networkd).toContain('MACAddress=52:54:00:12:34:56');
    expect(networkd).toContain('MACAddress=52:54:00:ab:cd:ef');
    expect(networkd).toMatch(/DHCP=(ipv4|yes)/);
  }, 60_000);

  it('a static address with gateway and DNS (golden)', async () => {
    const text = renderNetworkConfig({
      ...minimal,
      network: { kind: 'static', mac: '52:54:00:12:34:56', address: '192.168.50.10/24', gateway: '192.168.50.1', dns: ['192.168.50.1', '9.9.9.9'] },
    });
    golden('static.network-config', text);
    expect(yaml11(text)).toEqual({
      version: 2,
      ethernets: {
        eth0: {
          match: { macaddress: '52:54:00:12:34:56' },
          'set-name': 'eth0',
          addresses: ['192.168.50.10/24'],
          routes: [{ to: '0.0.0.0/0', via: '192.168.50.1' }],
          nameservers: { addresses: ['192.168.50.1', '9.9.9.9'] },
        },
      },
    });
    const networkd = await toNetworkd(text);
    expect(networkd).toContain('Address=192.168.50.10/24');
    expect(networkd).toContain('Gateway=192.168.50.1');
    expect(networkd).toContain('DNS=192.168.50.1 9.9.9.9');
  }, 60_000);

  it('configures each NIC of a managed network: a management NIC without gateway, DHCP, a static address (golden)', async () => {
    const text = renderNetworkConfig({
      ...minimal,
      network: {
        kind: 'nics',
        nics: [
          { mac: '52:54:00:00:00:01', address: '10.0.2.15/24' },
          { mac: '52:54:00:00:00:02', dhcp: true },
          { mac: '52:54:00:00:00:03', address: '10.77.0.50/24', gateway: '10.77.0.1', dns: ['10.77.0.1'], search: ['lab.internal'] },
        ],
      },
    });
    golden('managed-nics.network-config', text);
    const networkd = await toNetworkd(text);
    expect(networkd).toContain('Address=10.0.2.15/24');
    expect(networkd).toContain('Address=10.77.0.50/24');
    expect(networkd).toContain('Gateway=10.77.0.1');
    expect(networkd).toMatch(/DHCP=(ipv4|yes)/);
    expect(() => renderNetworkConfig({ ...minimal, network: { kind: 'nics', nics: [{ mac: '52:54:00:00:00:01', address: '10.0.2.15' }] } })).toThrow(/network.nics\[0\].address/);
  });

  it("passes the user's own network-config through untouched (golden)", () => {
    const own = 'version: 2\nethernets:\n  lan:\n    match: {macaddress: "52:54:00:12:34:56"}\n    addresses: [10.1.2.3/16]\n';
    const text = renderNetworkConfig({ ...minimal, network: { kind: 'user-config', text: own } });
    golden('user.network-config', text);
    expect(text).toBe(own);
  });

  it('refuses bad MACs, addresses and gateways of the other family', () => {
    expectInvalid(() => renderNetworkConfig({ ...minimal, network: { kind: 'dhcp', macs: ['52:54:00:12:34'] } }), 'network.macs[0]');
    expectInvalid(() => renderNetworkConfig({ ...minimal, network: { kind: 'dhcp', macs: [] } }), 'network.macs');
    expectInvalid(() => renderNetworkConfig({ ...minimal, network: { kind: 'dhcp', macs: ['52:54:00:12:34:56', '52:54:00:12:34:56'] } }), 'network.macs');
    expectInvalid(() => renderNetworkConfig({ ...minimal, network: { kind: 'static', mac: '52:54:00:12:34:56', address: '10.0.0.5' } }), 'network.address');
    expectInvalid(() => renderNetworkConfig({ ...minimal, network: { kind: 'static', mac: '52:54:00:12:34:56', address: '10.0.0.5/33' } }), 'network.address');
    expectInvalid(
      () => renderNetworkConfig({ ...minimal, network: { kind: 'static', mac: '52:54:00:12:34:56', address: '10.0.0.5/24', gateway: 'fd00::1' } }),
      'network.gateway',
    );
  });
});
