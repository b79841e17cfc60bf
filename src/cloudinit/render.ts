/**
 * The NoCloud seed files of one instance, rendered from a SeedRequest: meta-data, user-data and network-config.
 * Pure and deterministic (same request, same bytes), so golden files pin them.
 *
 * All YAML is produced by the `yaml` package as YAML 1.1 documents, so any string PyYAML would read as something
 * else (`on`, `no`, `0644`, a MAC like `52:54:00:12:34:56`, which YAML 1.1 reads as a base-60 integer) is quoted.
 * Nothing here builds YAML by hand.
 *
 * User-data merge rules (the user's own user-data is optional and already validated by the caller):
 * - virtnode's base cloud-config: `hostname`, `fqdn` (when given), `manage_etc_hosts: true`, `timezone` (when
 *   given), `users: [<default user>]`, `ssh_pwauth: false`, `ssh_deletekeys: true` and `ssh_keys` with the
 *   instance's host keys.
 * - The user's user-data is #cloud-config: one mapping. The user's keys win over virtnode's, except
 *   - `users`: the user's list is kept as written and virtnode's default user is appended to it, unless the list
 *     already has a user of the same name (then the user's entry wins whole). A comma-separated string becomes a
 *     list; the mapping form (`users: {name: {...}}`) gets virtnode's user as one more entry.
 *   - `ssh_authorized_keys` (top level, for the distro's default user): virtnode sets none there (its keys go on
 *     its own user), so the user's list is kept as is.
 *   - `ssh_keys` always comes from virtnode: the host keys are the instance's identity and virtnode has already
 *     written them to known_hosts, so a user's `ssh_keys` is dropped.
 *   Output order: virtnode's keys the user did not set (in the order above), then the user's keys in the user's
 *   order; the user's comments, quoting and anchors are kept (the user's document is edited, not re-serialized
 *   from values).
 * - Any other kind (script, #include, boothook, jinja, MIME, ...): a MIME multipart/mixed: the user's text first
 *   with its own content type (a user's MIME message nested whole; cloud-init walks nested multiparts), then
 *   virtnode's base as `text/cloud-config` with a `Merge-Type` that keeps the user's values and appends to the
 *   user's lists, then virtnode's `ssh_keys` alone, replacing any. Both apply, with the rules above, even when the
 *   user's MIME carries cloud-config parts of its own. The boundary is derived from the instance-id.
 *
 * Deliberate differences from a naive reading of cloud-init's docs:
 * - `ssh_genkeytypes` is not written: cloud-init (cc_ssh) generates no key at all when `ssh_keys` is present, and
 *   its schema rejects an empty list (`minItems: 1`).
 * - `ssh_deletekeys: true`: cc_ssh deletes the image's `/etc/ssh/ssh_host_*key*` first and writes `ssh_keys`
 *   after, so the injected keys survive, and no host key baked into an image (of a type virtnode did not inject)
 *   is ever shared between instances.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { Document, YAMLMap, isAlias, isMap, isNode, isPair, isScalar, isSeq, parseDocument } from 'yaml';
import type { Pair, YAMLSeq } from 'yaml';
import { invalid } from '../lib/errors.ts';
import { userDataKind } from './validate.ts';

export type HostKeyType = 'ed25519' | 'ecdsa' | 'rsa';

export interface HostKey {
  type: HostKeyType;
  /** OpenSSH private key (PEM-like text). A secret: never logged. */
  privateKey: string;
  /** `ssh-ed25519 AAAA... comment` */
  publicKey: string;
}

export interface DefaultUser {
  name: string;
  sshAuthorizedKeys: string[];
  /** A crypt(3) hash (`$6$...`, `$y$...`); plaintext passwords are refused. */
  passwordHash?: string;
  /** Passwordless sudo for everything. */
  sudo: boolean;
}

export type NetworkRequest =
  | { kind: 'dhcp'; macs: string[] }
  | { kind: 'static'; mac: string; /** CIDR, e.g. 10.0.0.5/24 */ address: string; gateway?: string; dns?: string[] }
  | { kind: 'user-config'; text: string }
  /** One entry per NIC, in NIC order (named eth0, eth1, ...): DHCP, or a static address with optional gateway and DNS. */
  | { kind: 'nics'; nics: NicNetworkConfig[] };

export type NicNetworkConfig =
  | { mac: string; dhcp: true }
  | { mac: string; dhcp?: false; /** CIDR, e.g. 10.77.0.50/24 */ address: string; gateway?: string; dns?: string[]; search?: string[] };

export interface SeedRequest {
  /** Fresh per instance, e.g. `i-<uuid>`; a new one makes cloud-init run its per-instance modules again. */
  instanceId: string;
  /** The instance name, a DNS label. */
  hostname: string;
  fqdn?: string;
  defaultUser: DefaultUser;
  timezone?: string;
  hostKeys: HostKey[];
  /** The user's own user-data, any kind, already validated by the caller. */
  userData?: string;
  network: NetworkRequest;
}

export type RenderedUserDataKind = 'cloud-config' | 'mime';

export interface RenderedUserData {
  text: string;
  kind: RenderedUserDataKind;
}

export const CLOUD_CONFIG_HEADER_LINE = '#cloud-config';
export const SUDO_ALL_NOPASSWD = 'ALL=(ALL) NOPASSWD:ALL';
export const DEFAULT_USER_SHELL = '/bin/bash';

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;
const FQDN_MAX_CHARS = 253;
/** Portable Linux user names (like adduser's default NAME_REGEX), at most 32 characters. */
const USER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;
/** crypt(3): $1$ md5, $2b$ bcrypt, $5$ sha256, $6$ sha512, $y$ yescrypt, $gy$ gost-yescrypt, $7$ scrypt. */
const CRYPT_HASH = /^\$(?:1|2[abxy]|5|6|y|gy|7)\$[^\s:]+$/;
const HOST_KEY_TYPES: readonly HostKeyType[] = ['ed25519', 'ecdsa', 'rsa'];
/** No folding: long strings (RSA public keys, URLs) stay on one line. */
const STRINGIFY = { lineWidth: 0, minContentWidth: 0 } as const;
const MIME_LINE_MAX_CHARS = 998;
const BASE64_LINE_CHARS = 76;

// ------------------------------------------------------------------------------------------------ validation

function checkSingleLine(field: string, value: string): void {
  if (value === '' || /[\r\n\0]/.test(value)) throw invalid(field, `must be one non-empty line, got ${JSON.stringify(value)}`);
}

function checkRequest(req: SeedRequest): void {
  checkSingleLine('instanceId', req.instanceId);
  if (!DNS_LABEL.test(req.hostname)) {
    throw invalid('hostname', `${JSON.stringify(req.hostname)} is not a DNS label`, 'use 1-63 letters, digits and hyphens, not starting or ending with a hyphen');
  }
  if (req.fqdn !== undefined) {
    const labels = req.fqdn.replace(/\.$/, '').split('.');
    if (req.fqdn.length > FQDN_MAX_CHARS || labels.length < 2 || !labels.every((l) => DNS_LABEL.test(l))) {
      throw invalid('fqdn', `${JSON.stringify(req.fqdn)} is not a fully qualified domain name`, 'e.g. web1.example.org');
    }
  }
  if (!USER_NAME.test(req.defaultUser.name)) {
    throw invalid('defaultUser.name', `${JSON.stringify(req.defaultUser.name)} is not a Linux user name`, 'use lower-case letters, digits, "_" and "-", starting with a letter or "_", at most 32 characters');
  }
  req.defaultUser.sshAuthorizedKeys.forEach((k, i) => checkSingleLine(`defaultUser.sshAuthorizedKeys[${i}]`, k));
  const hash = req.defaultUser.passwordHash;
  if (hash !== undefined && !CRYPT_HASH.test(hash)) {
    // Never echo the value: it may be a plaintext password.
    throw invalid('defaultUser.passwordHash', 'is not a crypt(3) hash ($6$..., $y$...)', "make one with `openssl passwd -6` or `mkpasswd -m sha-512`");
  }
  if (req.timezone !== undefined) checkSingleLine('timezone', req.timezone);
  if (req.hostKeys.length === 0) {
    throw invalid('hostKeys', 'at least one host key is needed', 'generate them with generateHostKeys(); the host key is part of the instance identity');
  }
  const seen = new Set<HostKeyType>();
  req.hostKeys.forEach((k, i) => {
    if (!HOST_KEY_TYPES.includes(k.type)) throw invalid(`hostKeys[${i}].type`, `must be one of ${HOST_KEY_TYPES.join(', ')}`);
    if (seen.has(k.type)) throw invalid(`hostKeys[${i}].type`, `two ${k.type} keys; cloud-init takes one per type`);
    seen.add(k.type);
    if (!k.privateKey.includes('PRIVATE KEY')) throw invalid(`hostKeys[${i}].privateKey`, 'is not an OpenSSH private key');
    checkSingleLine(`hostKeys[${i}].publicKey`, k.publicKey);
  });
}

// ------------------------------------------------------------------------------------------------ meta-data

/** NoCloud meta-data: `instance-id` and `local-hostname`. */
export function renderMetaData(req: SeedRequest): string {
  checkSingleLine('instanceId', req.instanceId);
  if (!DNS_LABEL.test(req.hostname)) throw invalid('hostname', `${JSON.stringify(req.hostname)} is not a DNS label`);
  return new Document({ 'instance-id': req.instanceId, 'local-hostname': req.hostname }, { version: '1.1' }).toString(STRINGIFY);
}

// ------------------------------------------------------------------------------------------------ user-data

function defaultUserEntry(user: DefaultUser, secrets: boolean): Record<string, unknown> {
  const entry: Record<string, unknown> = { name: user.name, shell: DEFAULT_USER_SHELL };
  if (user.sudo) entry['sudo'] = SUDO_ALL_NOPASSWD;
  if (user.passwordHash === undefined) {
    entry['lock_passwd'] = true;
  } else {
    entry['lock_passwd'] = false;
    if (secrets) entry['hashed_passwd'] = user.passwordHash;
  }
  if (user.sshAuthorizedKeys.length > 0) entry['ssh_authorized_keys'] = [...user.sshAuthorizedKeys];
  return entry;
}

function sshKeysMapping(keys: HostKey[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const type of HOST_KEY_TYPES) {
    const key = keys.find((k) => k.type === type);
    if (key === undefined) continue;
    out[`${type}_private`] = key.privateKey.endsWith('\n') ? key.privateKey : `${key.privateKey}\n`;
    out[`${type}_public`] = key.publicKey.trim();
  }
  return out;
}

/** virtnode's own settings, in output order; without the host private keys and password hash unless `secrets`. */
function baseEntries(req: SeedRequest, secrets: boolean): Array<[string, unknown]> {
  const entries: Array<[string, unknown]> = [['hostname', req.hostname]];
  if (req.fqdn !== undefined) entries.push(['fqdn', req.fqdn]);
  entries.push(['manage_etc_hosts', true]);
  if (req.timezone !== undefined) entries.push(['timezone', req.timezone]);
  entries.push(
    ['users', [defaultUserEntry(req.defaultUser, secrets)]],
    ['ssh_pwauth', false],
    ['ssh_deletekeys', true],
  );
  if (secrets) entries.push(['ssh_keys', sshKeysMapping(req.hostKeys)]);
  return entries;
}

function pairKey(pair: Pair): string | undefined {
  const k: unknown = pair.key;
  if (isScalar(k)) return String(k.value);
  if (typeof k === 'string' || typeof k === 'number' || typeof k === 'boolean') return String(k);
  return undefined;
}

function scalarString(node: unknown): string | undefined {
  return isScalar(node) && typeof node.value === 'string' ? node.value : undefined;
}

/** Names already in a `users` list: plain names and mappings' `name`. */
function userNames(seq: YAMLSeq): Set<string> {
  const names = new Set<string>();
  for (const item of seq.items) {
    const plain = scalarString(item);
    if (plain !== undefined) names.add(plain.trim());
    else if (isMap(item)) {
      const name = scalarString(item.get('name', true));
      if (name !== undefined) names.add(name);
    }
  }
  return names;
}

/** The user's `users` value with virtnode's default user added (see the merge rules at the top). */
function mergeUsers(doc: Document, value: unknown, user: DefaultUser, secrets: boolean): unknown {
  const ours = defaultUserEntry(user, secrets);
  const resolved = isAlias(value) ? value.resolve(doc)?.clone() : value;
  if (resolved === null || resolved === undefined || (isScalar(resolved) && (resolved.value === null || resolved.value === ''))) {
    return doc.createNode([ours]);
  }
  if (isScalar(resolved) && typeof resolved.value === 'string') {
    const names = resolved.value.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const seq = doc.createNode(names) as YAMLSeq;
    if (!names.includes(user.name)) seq.items.push(doc.createNode(ours));
    return seq;
  }
  if (isSeq(resolved)) {
    if (!userNames(resolved).has(user.name)) {
      const node = doc.createNode(ours);
      // A flow list `[a, b]` stays valid with a mapping appended; block style reads better.
      resolved.flow = false;
      resolved.items.push(node);
    }
    return resolved;
  }
  if (isMap(resolved)) {
    if (!resolved.items.some((p) => pairKey(p) === user.name)) {
      const { name: _name, ...rest } = ours;
      resolved.flow = false;
      resolved.items.push(doc.createPair(user.name, rest));
    }
    return resolved;
  }
  throw invalid('userData', '`users` must be a list, a mapping or a comma-separated string');
}

/** virtnode's base cloud-config, or only some of its keys. */
function renderBaseCloudConfig(req: SeedRequest, secrets: boolean, include: (key: string) => boolean = () => true): string {
  const doc = new Document(Object.fromEntries(baseEntries(req, secrets).filter(([key]) => include(key))), { version: '1.1' });
  return `${CLOUD_CONFIG_HEADER_LINE}\n${doc.toString(STRINGIFY)}`;
}

/** Strips the `#cloud-config` line (and a BOM) from the user's text. */
function cloudConfigBody(text: string): string {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const nl = body.indexOf('\n');
  return nl === -1 ? '' : body.slice(nl + 1);
}

function mergeCloudConfig(req: SeedRequest, userText: string, secrets: boolean): string {
  const doc = parseDocument(cloudConfigBody(userText), { version: '1.1', uniqueKeys: false, keepSourceTokens: false });
  if (doc.errors.length > 0) {
    throw invalid('userData', `the cloud-config is not valid YAML: ${doc.errors[0]?.message.split('\n')[0] ?? ''}`, 'run `virtnode cloud-init validate FILE`');
  }
  const contents: unknown = doc.contents;
  let userMap: YAMLMap;
  if (contents === null || contents === undefined || (isScalar(contents) && contents.value === null)) userMap = new YAMLMap();
  else if (isMap(contents)) userMap = contents;
  else throw invalid('userData', 'the top level of the cloud-config must be a mapping', 'run `virtnode cloud-init validate FILE`');

  const userKeys = new Set(userMap.items.map(pairKey).filter((k): k is string => k !== undefined));
  const basePairs: Pair[] = [];
  for (const [key, value] of baseEntries(req, secrets)) {
    if (key === 'ssh_keys' || !userKeys.has(key)) basePairs.push(doc.createPair(key, value));
  }
  const userPairs: Pair[] = [];
  for (const pair of userMap.items) {
    if (!isPair(pair)) continue;
    const key = pairKey(pair);
    if (key === 'ssh_keys') continue;
    if (key === 'users') pair.value = mergeUsers(doc, pair.value, req.defaultUser, secrets);
    userPairs.push(pair);
  }
  // The user's leading comment belongs to the user's first key, not to virtnode's block above it.
  const first = userPairs[0];
  if (userMap.commentBefore && first !== undefined && isNode(first.key)) {
    first.key.commentBefore = first.key.commentBefore ? `${userMap.commentBefore}\n${first.key.commentBefore}` : userMap.commentBefore;
  }
  const merged = new YAMLMap();
  merged.items = [...basePairs, ...userPairs];
  if (userMap.comment) merged.comment = userMap.comment;
  (doc as Document).contents = merged;
  return `${CLOUD_CONFIG_HEADER_LINE}\n${doc.toString(STRINGIFY)}`;
}

/** cloud-init's own prefixes (handlers/__init__.py INCLUSION_TYPES_MAP), longest first, matched like it does. */
const USER_DATA_TYPES: ReadonlyArray<[prefix: string, contentType: string]> = [
  ['#cloud-config-archive', 'text/cloud-config-archive'],
  ['#cloud-config-jsonp', 'text/cloud-config-jsonp'],
  ['## template: jinja', 'text/jinja2'],
  ['#cloud-boothook', 'text/cloud-boothook'],
  ['#include-once', 'text/x-include-once-url'],
  ['#part-handler', 'text/part-handler'],
  ['#cloud-config', 'text/cloud-config'],
  ['#include', 'text/x-include-url'],
  ['#!', 'text/x-shellscript'],
];

/** The MIME type cloud-init gives this user-data; text/plain (which it sniffs again) when none matches. */
export function userDataContentType(text: string): string {
  const head = text.replace(/^\uFEFF/, '').trimStart().toLowerCase();
  for (const [prefix, type] of USER_DATA_TYPES) if (head.startsWith(prefix)) return type;
  return 'text/plain';
}

const USER_PART_FILENAMES: Record<string, string> = {
  'text/x-shellscript': 'user-script',
  'text/cloud-boothook': 'user-boothook',
  'text/part-handler': 'user-part-handler.py',
};

interface MimePart {
  contentType: string;
  filename?: string;
  /** cloud-init's `Merge-Type` header: how this cloud-config part merges into the parts before it. */
  mergeType?: string;
  body: string;
}

function mimeBoundary(instanceId: string, bodies: string[]): string {
  const digest = createHash('sha256').update(instanceId).digest('hex').slice(0, 32);
  for (let n = 0; ; n++) {
    const boundary = `===============virtnode-${digest}${n === 0 ? '' : `-${n}`}==`;
    if (!bodies.some((b) => b.includes(boundary))) return boundary;
  }
}

function isPlain7bit(text: string): boolean {
  return /^[\x09\x0a\x20-\x7e]*$/.test(text) && text.split('\n').every((l) => l.length <= MIME_LINE_MAX_CHARS);
}

function mimePart(part: MimePart): string {
  const headers: string[] = [];
  const disposition = [
    ...(part.mergeType === undefined ? [] : [`Merge-Type: ${part.mergeType}`]),
    ...(part.filename === undefined ? [] : [`Content-Disposition: attachment; filename="${part.filename}"`]),
  ];
  if (isPlain7bit(part.body)) {
    headers.push(`Content-Type: ${part.contentType}; charset="us-ascii"`, 'MIME-Version: 1.0', 'Content-Transfer-Encoding: 7bit', ...disposition);
    return `${headers.join('\n')}\n\n${part.body}`;
  }
  const b64 = Buffer.from(part.body, 'utf8').toString('base64');
  const lines = b64.match(new RegExp(`.{1,${BASE64_LINE_CHARS}}`, 'g')) ?? [];
  headers.push(`Content-Type: ${part.contentType}; charset="utf-8"`, 'MIME-Version: 1.0', 'Content-Transfer-Encoding: base64', ...disposition);
  return `${headers.join('\n')}\n\n${lines.join('\n')}\n`;
}

/**
 * Merges virtnode's part into whatever cloud-config the user's parts hold without replacing any of the user's
 * values, appending to the user's lists (`users` gets virtnode's user) and filling nested mappings.
 */
export const MIME_BASE_MERGE_TYPE = 'dict(no_replace,recurse_array)+list(append)+str()';

/**
 * The user's part first, then virtnode's base merged under the user's values (MIME_BASE_MERGE_TYPE), then
 * virtnode's `ssh_keys` alone with cloud-init's default merge (replace), so the host keys are virtnode's even when
 * a cloud-config part of the user's sets some. This gives the same result as merging a plain cloud-config, except
 * that a user already named in the user's `users` gets virtnode's entry too (cloud-init applies it to that user).
 */
function renderMime(req: SeedRequest, userText: string, secrets: boolean): string {
  const base = renderBaseCloudConfig(req, secrets, (key) => key !== 'ssh_keys');
  const hostKeys = secrets ? renderBaseCloudConfig(req, secrets, (key) => key === 'ssh_keys') : undefined;
  const boundary = mimeBoundary(req.instanceId, [base, hostKeys ?? '', userText]);
  const parts: string[] = [];
  if (userDataKind(userText) === 'mime') {
    // A whole MIME entity (its headers, a blank line, its body) nests as is.
    parts.push(userText.replace(/^\uFEFF/, ''));
  } else {
    const contentType = userDataContentType(userText);
    const filename = USER_PART_FILENAMES[contentType];
    parts.push(mimePart(filename === undefined ? { contentType, body: userText } : { contentType, filename, body: userText }));
  }
  parts.push(
    mimePart({ contentType: 'text/cloud-config', filename: 'virtnode.cfg', mergeType: MIME_BASE_MERGE_TYPE, body: base }),
  );
  if (hostKeys !== undefined) parts.push(mimePart({ contentType: 'text/cloud-config', filename: 'virtnode-host-keys.cfg', body: hostKeys }));
  // The line break before each delimiter belongs to the delimiter (RFC 2046), so bodies keep their last newline.
  const head = `Content-Type: multipart/mixed; boundary="${boundary}"\nMIME-Version: 1.0\n\n`;
  return `${head}${parts.map((p) => `--${boundary}\n${p}\n`).join('')}--${boundary}--\n`;
}

/**
 * The instance's user-data: virtnode's base cloud-config, merged with the user's cloud-config, or packed with
 * the user's other user-data into a MIME multipart. See the merge rules at the top of this file.
 * `withSecrets: false` leaves out the SSH host private keys and the password hash: the copy a guest may still read
 * after its first boot (the modules that use them run once per instance).
 */
export function renderUserData(req: SeedRequest, options: { withSecrets?: boolean } = {}): RenderedUserData {
  checkRequest(req);
  const secrets = options.withSecrets ?? true;
  const userText = req.userData;
  if (userText === undefined || userText.trim() === '') return { text: renderBaseCloudConfig(req, secrets), kind: 'cloud-config' };
  if (userDataKind(userText) === 'cloud-config') return { text: mergeCloudConfig(req, userText, secrets), kind: 'cloud-config' };
  return { text: renderMime(req, userText, secrets), kind: 'mime' };
}

// ------------------------------------------------------------------------------------------------ network-config

function checkMac(field: string, mac: string): string {
  if (!MAC.test(mac)) throw invalid(field, `${JSON.stringify(mac)} is not a MAC address`, 'write six hex pairs, e.g. 52:54:00:12:34:56');
  return mac.toLowerCase();
}

function checkCidr(field: string, value: string): 4 | 6 {
  const [ip, prefix, ...rest] = value.split('/');
  const family = ip === undefined ? 0 : isIP(ip);
  const bits = prefix === undefined || !/^\d{1,3}$/.test(prefix) ? -1 : Number(prefix);
  if (rest.length > 0 || family === 0 || bits < 0 || bits > (family === 4 ? 32 : 128)) {
    throw invalid(field, `${JSON.stringify(value)} is not an address with a prefix length`, 'e.g. 192.168.50.10/24 or fd00::10/64');
  }
  return family === 4 ? 4 : 6;
}

function checkIp(field: string, value: string): 4 | 6 {
  const family = isIP(value);
  if (family === 0) throw invalid(field, `${JSON.stringify(value)} is not an IP address`);
  return family === 4 ? 4 : 6;
}

/**
 * network-config version 2. Interfaces are matched by MAC (lower case) and named eth0, eth1, ... in the order
 * given. DHCP asks to be identified by MAC (`dhcp-identifier: mac`), so clones with a stale machine-id still get
 * their own lease. The default route is written as 0.0.0.0/0 (::/0) rather than `default`, which cloud-init
 * before 23.x does not understand. `user-config` is the user's own network-config, passed through untouched.
 */
export function renderNetworkConfig(req: SeedRequest): string {
  const net = req.network;
  const ethernets: Record<string, unknown> = {};
  if (net.kind === 'user-config') {
    if (net.text.trim() === '') throw invalid('network', 'the network-config is empty');
    return net.text;
  }
  if (net.kind === 'dhcp') {
    if (net.macs.length === 0) throw invalid('network.macs', 'at least one MAC address is needed');
    const macs = net.macs.map((m, i) => checkMac(`network.macs[${i}]`, m));
    if (new Set(macs).size !== macs.length) throw invalid('network.macs', 'the same MAC address appears twice');
    macs.forEach((macaddress, i) => {
      ethernets[`eth${i}`] = { match: { macaddress }, 'set-name': `eth${i}`, dhcp4: true, 'dhcp-identifier': 'mac' };
    });
  } else if (net.kind === 'nics') {
    if (net.nics.length === 0) throw invalid('network.nics', 'at least one NIC is needed');
    const macs = net.nics.map((n, i) => checkMac(`network.nics[${i}].mac`, n.mac));
    if (new Set(macs).size !== macs.length) throw invalid('network.nics', 'the same MAC address appears twice');
    net.nics.forEach((nic, i) => {
      const eth: Record<string, unknown> = { match: { macaddress: macs[i] }, 'set-name': `eth${i}` };
      if (nic.dhcp === true) {
        Object.assign(eth, { dhcp4: true, 'dhcp-identifier': 'mac' });
      } else {
        const family = checkCidr(`network.nics[${i}].address`, nic.address);
        eth['addresses'] = [nic.address];
        if (nic.gateway !== undefined) {
          if (checkIp(`network.nics[${i}].gateway`, nic.gateway) !== family) throw invalid(`network.nics[${i}].gateway`, 'must be of the same family as the address');
          // gateway4/6, not routes: cloud-init's ifupdown renderer turns routes into `route add` (net-tools, absent
          // from minimal images) but gateway4 into ifupdown's own `gateway`.
          eth[family === 4 ? 'gateway4' : 'gateway6'] = nic.gateway;
        }
        const nameservers: Record<string, unknown> = {};
        if (nic.dns !== undefined && nic.dns.length > 0) {
          nic.dns.forEach((d, j) => checkIp(`network.nics[${i}].dns[${j}]`, d));
          nameservers['addresses'] = [...nic.dns];
        }
        if (nic.search !== undefined && nic.search.length > 0) nameservers['search'] = [...nic.search];
        if (Object.keys(nameservers).length > 0) eth['nameservers'] = nameservers;
      }
      ethernets[`eth${i}`] = eth;
    });
  } else {
    const macaddress = checkMac('network.mac', net.mac);
    const family = checkCidr('network.address', net.address);
    const eth: Record<string, unknown> = { match: { macaddress }, 'set-name': 'eth0', addresses: [net.address] };
    if (net.gateway !== undefined) {
      if (checkIp('network.gateway', net.gateway) !== family) throw invalid('network.gateway', `must be an IPv${family} address like network.address`);
      eth['routes'] = [{ to: family === 4 ? '0.0.0.0/0' : '::/0', via: net.gateway }];
    }
    if (net.dns !== undefined && net.dns.length > 0) {
      net.dns.forEach((d, i) => checkIp(`network.dns[${i}]`, d));
      eth['nameservers'] = { addresses: [...net.dns] };
    }
    ethernets['eth0'] = eth;
  }
  return new Document({ version: 2, ethernets }, { version: '1.1' }).toString(STRINGIFY);
}
