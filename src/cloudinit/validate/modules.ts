/**
 * The cloud-config keys virtnode knows, as Specs. The thorough ones follow cloud-init's own JSON schema
 * (schema-cloud-config-v1.json) for the shapes it accepts; the rest are checked only for the type of their top
 * node. Deprecated forms cloud-init still honours are warnings, not errors.
 */
import {
  arr,
  bool,
  deprecated,
  int,
  isMapping,
  literal,
  nul,
  obj,
  oneOf,
  refine,
  str,
  warn,
} from './schema.ts';
import type { Spec } from './schema.ts';

export const HASH_HINT = "store a hash instead: `openssl passwd -6` or `mkpasswd -m sha-512` prints one";

/** crypt(3) hashes: $1$ md5, $2b$ bcrypt, $5$ sha256, $6$ sha512, $y$ yescrypt, $gy$ gost-yescrypt, $7$ scrypt. */
const CRYPT_HASH = /^\$(?:1|2[abxy]|5|6|y|gy|7|sha1|md5)\$/;

export function looksHashed(password: string): boolean {
  // "!" / "*" prefixes are locked-account markers, not passwords.
  return CRYPT_HASH.test(password) || /^[!*]/.test(password);
}

function passwordCheck(kind: 'plain' | 'maybe-hash'): Spec {
  return refine(str(), (value, path, ctx) => {
    const v = value as string;
    if (kind === 'plain') {
      warn(ctx, path, 'plaintext password in user-data: anyone who can read the seed or the metadata can read it', HASH_HINT);
    } else if (!looksHashed(v)) {
      warn(ctx, path, 'this does not look like a crypt(3) hash ($6$..., $y$...); a plaintext value here will not work as a password and leaks', HASH_HINT);
    }
  });
}

// ---------------------------------------------------------------------------------------------- users, groups

const USER_PROPS: Record<string, Spec> = {
  name: str({ nonEmpty: true }),
  expiredate: str({
    pattern: /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/,
    patternDescribe: 'a date YYYY-MM-DD',
  }),
  gecos: str(),
  groups: oneOf([str(), arr(str(), { minItems: 1 })], 'a string or a list of strings'),
  homedir: str(),
  inactive: str(),
  'lock-passwd': bool(),
  lock_passwd: bool(),
  no_create_home: bool(),
  no_log_init: bool(),
  no_user_group: bool(),
  passwd: passwordCheck('maybe-hash'),
  hashed_passwd: passwordCheck('maybe-hash'),
  plain_text_passwd: passwordCheck('plain'),
  create_groups: bool(),
  primary_group: str(),
  selinux_user: str(),
  shell: str(),
  snapuser: str(),
  ssh_authorized_keys: arr(str(), { minItems: 1 }),
  ssh_import_id: arr(str(), { minItems: 1 }),
  ssh_redirect_user: bool(),
  system: bool(),
  sudo: oneOf(
    [
      str(),
      nul(),
      literal(false),
      // cloud-init writes every rule of a list (distros.write_sudo_rules); its 22.4 schema forgets this form.
      arr(str(), { minItems: 1 }),
      deprecated(literal(true), 'sudo: true is not a sudo rule', 'write the rule itself, e.g. sudo: "ALL=(ALL) NOPASSWD:ALL"'),
    ],
    'a sudo rule string, a list of rules, false or null',
  ),
  uid: oneOf([int({ min: 0 }), deprecated(str({ pattern: /^\d+$/, patternDescribe: 'a number' }), 'uid as a string is deprecated', 'write it as an integer')], 'an integer'),
};

const userMapping = obj(USER_PROPS, {
  unknown: 'error',
  deprecated: { 'lock-passwd': 'use lock_passwd' },
  describe: 'a user mapping',
  extra(u, path, ctx) {
    if (!('name' in u) && !('snapuser' in u)) ctx.issues.push({ severity: 'error', path, message: 'missing required key "name"' });
  },
});

const userItem = oneOf(
  [str({ nonEmpty: true }), userMapping, arr(str())],
  'a user name, "default", or a mapping with at least "name"',
);

const users = oneOf(
  [
    arr(userItem, { minItems: 1 }),
    deprecated(str(), 'users as a comma-separated string is a legacy form', 'write a list: "- default" and one mapping per user'),
    deprecated(
      obj({}, { unknown: 'allow' }),
      'users as a mapping is a legacy form',
      'write a list: "- default" and one mapping per user',
    ),
  ],
  'a list of users',
);

const groupsByName = obj({}, {
  unknown: 'allow',
  extra(m, path, ctx) {
    for (const [k, v] of Object.entries(m)) oneOf([str(), arr(str(), { minItems: 1 })], 'a member name or a list of member names').check(v, [...path, k], ctx);
  },
});

const groups = oneOf(
  [str(), arr(oneOf([str(), groupsByName], 'a group name or a mapping group → members'), { minItems: 1 }), groupsByName],
  'a list of groups',
);

// ---------------------------------------------------------------------------------------------- ssh

const SSH_KEY_NAME = /^(dsa|ecdsa|ed25519|rsa)_(public|private|certificate)$/;

const sshKeys = obj({}, {
  patterns: [[SSH_KEY_NAME, str()]],
  unknown: 'error',
  unknownHint: 'host key names are <type>_<part>: type rsa, ecdsa or ed25519; part private, public or certificate',
  describe: 'a mapping of host keys (rsa_private, ed25519_public, ...)',
  extra(m, path, ctx) {
    for (const k of Object.keys(m)) {
      if (k.startsWith('dsa_')) warn(ctx, [...path, k], 'DSA host keys are obsolete and rejected by current OpenSSH', 'use ed25519 or ecdsa keys', 'key');
    }
  },
});

// ---------------------------------------------------------------------------------------------- write_files

/** write_files permissions: an octal string. YAML 1.1 turns a bare 0644 into the integer 420, hence the hint. */
function octalMode(): Spec {
  const base = str({ pattern: /^(0o?)?[0-7]{3,4}$/, patternDescribe: "an octal mode like '0644'" });
  return {
    describe: "an octal mode string like '0644'",
    kinds: ['string'],
    check(value, path, ctx) {
      if (typeof value === 'number' && Number.isInteger(value)) {
        // A bare 0644 arrives as 420 (≤ 0o777); a bare 644 as 644 (> 0o777, all digits octal).
        const hint =
          value >= 0 && value <= 0o777
            ? `YAML reads a bare 0${value.toString(8)} as the number ${value}; quote it: permissions: '0${value.toString(8)}'`
            : /^[0-7]{3,4}$/.test(String(value))
              ? `quote it: permissions: '${String(value).padStart(4, '0')}'`
              : "quote the mode: permissions: '0644'";
        ctx.issues.push({ severity: 'error', path, message: `expected an octal mode string like '0644', got integer ${value}`, hint });
        return;
      }
      base.check(value, path, ctx);
    },
  };
}

const writeFile = obj(
  {
    path: str({ nonEmpty: true }),
    content: str(),
    owner: str(),
    permissions: octalMode(),
    encoding: str({ enum: ['gz', 'gzip', 'gz+base64', 'gzip+base64', 'gz+b64', 'gzip+b64', 'b64', 'base64', 'text/plain'] }),
    append: bool(),
    defer: bool(),
  },
  {
    required: ['path'],
    unknown: 'error',
    describe: 'a file mapping with at least "path"',
    extra(f, path, ctx) {
      const p = f['path'];
      if (typeof p === 'string' && p !== '' && !p.startsWith('/')) warn(ctx, [...path, 'path'], 'relative path: cloud-init writes it relative to its working directory', 'use an absolute path');
    },
  },
);

// ---------------------------------------------------------------------------------------------- commands

/** A runcmd/bootcmd entry; a mapping there is nearly always an unquoted ": " inside a shell command. */
function command(allowNull: boolean): Spec {
  const inner = oneOf([str(), arr(str()), ...(allowNull ? [nul()] : [])], 'a command string or a list of arguments');
  return {
    describe: inner.describe,
    kinds: inner.kinds,
    check(value, path, ctx) {
      if (isMapping(value)) {
        ctx.issues.push({
          severity: 'error',
          path,
          message: 'expected a command string or a list of arguments, got a mapping',
          hint: 'an unquoted ": " in the command made YAML read a mapping; quote the whole command',
        });
        return;
      }
      inner.check(value, path, ctx);
    },
  };
}

// ---------------------------------------------------------------------------------------------- chpasswd

const chpasswdUser = obj(
  { name: str(), password: str(), type: str({ enum: ['hash', 'text', 'RANDOM'] }) },
  {
    required: ['name'],
    unknown: 'error',
    describe: 'a mapping with name and password (or type: RANDOM)',
    extra(u, path, ctx) {
      const type = u['type'] ?? 'hash';
      if (type === 'RANDOM') {
        if ('password' in u) ctx.issues.push({ severity: 'error', path: [...path, 'password'], message: 'type RANDOM generates the password; remove "password"' });
        return;
      }
      if (!('password' in u)) {
        ctx.issues.push({ severity: 'error', path, message: 'missing required key "password" (or set type: RANDOM)' });
        return;
      }
      const pw = u['password'];
      if (typeof pw !== 'string') return;
      if (type === 'text') warn(ctx, [...path, 'password'], 'plaintext password (type: text) in user-data', HASH_HINT);
      else if (type === 'hash' && !looksHashed(pw)) {
        warn(ctx, [...path, 'password'], 'type is hash (the default) but this does not look like a crypt(3) hash', `${HASH_HINT}, or set type: text if you really mean plaintext`);
      }
    },
  },
);

const chpasswdListEntry = refine(str({ pattern: /^.+:.+$/, patternDescribe: 'a "user:password" entry' }), (v, path, ctx) => {
  const pw = (v as string).slice((v as string).indexOf(':') + 1);
  if (pw !== 'RANDOM' && pw !== 'R' && !looksHashed(pw)) warn(ctx, path, 'plaintext password in chpasswd.list', HASH_HINT);
});

const chpasswd = obj(
  {
    expire: bool(),
    users: arr(chpasswdUser),
    list: deprecated(
      oneOf([refine(str(), (v, path, ctx) => {
        for (const line of (v as string).split('\n')) {
          if (line.trim() !== '') chpasswdListEntry.check(line.trim(), path, ctx);
        }
      }), arr(chpasswdListEntry)], 'a string or a list of "user:password" entries'),
      'chpasswd.list is deprecated',
      'use chpasswd.users: a list of {name, password, type}',
    ),
  },
  { unknown: 'error' },
);

// ---------------------------------------------------------------------------------------------- ntp, growpart, power_state

const ntp = oneOf(
  [
    nul(),
    obj(
      {
        pools: arr(str(), { unique: true }),
        servers: arr(str(), { unique: true }),
        ntp_client: str(),
        enabled: bool(),
        config: obj(
          { confpath: str(), check_exe: str(), packages: arr(str(), { unique: true }), service_name: str(), template: str() },
          { unknown: 'error' },
        ),
      },
      { unknown: 'error' },
    ),
  ],
  'a mapping (or null)',
);

const growpart = obj(
  {
    mode: oneOf(
      [
        str({ enum: ['auto', 'growpart', 'gpart', 'off'] }),
        deprecated(literal(false), 'mode: false is deprecated', "write mode: 'off' (quoted: YAML 1.1 reads bare off as false)"),
      ],
      'one of "auto", "growpart", "gpart", "off"',
    ),
    devices: arr(str()),
    ignore_growroot_disabled: bool(),
  },
  { unknown: 'error' },
);

const powerState = obj(
  {
    delay: oneOf(
      [
        int({ min: 0 }),
        literal('now'),
        deprecated(str({ pattern: /^\+?[0-9]+$/, patternDescribe: 'minutes like "+5"' }), 'delay as a string is deprecated', 'write the minutes as an integer, or "now"'),
      ],
      'minutes (an integer) or "now"',
    ),
    mode: str({ enum: ['poweroff', 'reboot', 'halt'] }),
    message: str(),
    timeout: int({ min: 0 }),
    condition: oneOf([str(), bool(), arr(undefined)], 'a command (string or list) or a boolean'),
  },
  { required: ['mode'], unknown: 'error' },
);

// ---------------------------------------------------------------------------------------------- mounts

const mounts = arr(arr(str(), { minItems: 1, maxItems: 6, describe: 'a list of 1 to 6 strings (fs_spec, mount point, type, options, dump, pass)' }), {
  minItems: 1,
  describe: 'a list of mount entries',
});

const mountDefaultFields = arr(oneOf([str(), nul()], 'a string or null'), { minItems: 6, maxItems: 6, describe: 'a list of exactly 6 fields' });

// ---------------------------------------------------------------------------------------------- the table

const mapping = (describe = 'a mapping'): Spec => obj({}, { unknown: 'allow', describe });
const modulesList = arr(oneOf([str(), arr(str())], 'a module name or [name, frequency]'));

/** Thoroughly checked keys. */
export const MODULES: Readonly<Record<string, Spec>> = {
  users,
  user: oneOf([str(), userMapping], 'a user name or a user mapping'),
  groups,
  ssh_authorized_keys: arr(str(), { minItems: 1 }),
  ssh_keys: sshKeys,
  ssh_pwauth: oneOf(
    [
      bool(),
      refine(str(), (v, path, ctx) => {
        if (v !== 'unchanged') warn(ctx, path, 'ssh_pwauth as a string is deprecated', 'write true or false (or "unchanged")');
      }),
    ],
    'a boolean',
  ),
  disable_root: bool(),
  hostname: str({ nonEmpty: true }),
  fqdn: str({ nonEmpty: true }),
  preserve_hostname: bool(),
  prefer_fqdn_over_hostname: bool(),
  manage_etc_hosts: oneOf(
    [literal(true, false, 'localhost'), deprecated(literal('template'), '"template" is deprecated', 'use true')],
    'true, false or "localhost"',
  ),
  timezone: str({ nonEmpty: true }),
  locale: str(),
  write_files: arr(writeFile, { minItems: 1 }),
  runcmd: arr(command(true), { minItems: 1, describe: 'a list of commands' }),
  bootcmd: arr(command(false), { minItems: 1, describe: 'a list of commands' }),
  packages: arr(
    oneOf([str(), arr(str(), { minItems: 2, maxItems: 2, describe: 'a [name, version] pair' })], 'a package name or a [name, version] pair'),
    { minItems: 1 },
  ),
  package_update: bool(),
  package_upgrade: bool(),
  package_reboot_if_required: bool(),
  mounts,
  mount_default_fields: mountDefaultFields,
  chpasswd,
  password: passwordCheck('plain'),
  ntp,
  growpart,
  resize_rootfs: literal(true, false, 'noblock'),
  power_state: powerState,
  final_message: str(),
};

/** Keys checked only for the type of their top node. */
export const SHALLOW: Readonly<Record<string, Spec>> = {
  apt: mapping(),
  apt_pipelining: oneOf([int(), bool(), str()], 'a boolean, an integer or "os"'),
  apt_update: deprecated(bool(), 'apt_update is deprecated', 'use package_update'),
  apt_upgrade: deprecated(bool(), 'apt_upgrade is deprecated', 'use package_upgrade'),
  apt_reboot_if_required: deprecated(bool(), 'apt_reboot_if_required is deprecated', 'use package_reboot_if_required'),
  apk_repos: mapping(),
  ansible: mapping(),
  autoinstall: mapping(),
  byobu_by_default: str(),
  ca_certs: mapping(),
  'ca-certs': deprecated(mapping(), '"ca-certs" is deprecated', 'use ca_certs'),
  chef: mapping(),
  cloud_init_modules: modulesList,
  cloud_config_modules: modulesList,
  cloud_final_modules: modulesList,
  device_aliases: mapping(),
  disable_ec2_metadata: bool(),
  disable_root_opts: str(),
  disk_setup: mapping(),
  drivers: mapping(),
  fan: mapping(),
  fs_setup: arr(undefined),
  grub_dpkg: mapping(),
  'grub-dpkg': deprecated(mapping(), '"grub-dpkg" is deprecated', 'use grub_dpkg'),
  keyboard: mapping(),
  landscape: mapping(),
  locale_configfile: str(),
  lxd: mapping(),
  manage_resolv_conf: bool(),
  mcollective: mapping(),
  migrate: bool(),
  no_ssh_fingerprints: bool(),
  authkey_hash: str(),
  phone_home: mapping(),
  puppet: mapping(),
  random_seed: mapping(),
  resolv_conf: mapping(),
  rh_subscription: mapping(),
  rsyslog: mapping(),
  salt_minion: mapping(),
  snap: mapping(),
  spacewalk: mapping(),
  ssh: mapping(),
  ssh_deletekeys: bool(),
  ssh_genkeytypes: arr(str({ enum: ['dsa', 'ecdsa', 'ed25519', 'rsa'] }), { minItems: 1 }),
  ssh_import_id: arr(str()),
  ssh_fp_console_blacklist: arr(str()),
  ssh_key_console_blacklist: arr(str()),
  allow_public_ssh_keys: bool(),
  ssh_quiet_keygen: bool(),
  ssh_publish_hostkeys: mapping(),
  swap: mapping(),
  ubuntu_advantage: mapping(),
  updates: mapping(),
  vendor_data: mapping(),
  wireguard: oneOf([nul(), mapping()], 'a mapping'),
  yum_repo_dir: str(),
  yum_repos: mapping(),
  zypper: mapping(),
  reporting: mapping(),
};

/** Keys cloud-init reads outside its module schema (merging, datasources, system config): accepted silently. */
export const OTHER_KNOWN: readonly string[] = [
  'merge_how',
  'merge_type',
  'datasource',
  'datasource_list',
  'system_info',
  'network',
  'output',
  'log_cfgs',
  'instance-id',
  'local-hostname',
  'manual_cache_clean',
  'syslog_fix_perms',
  'def_log_file',
  'ssh_svcname',
  'vendor_data2',
  'create_hostname_file',
  'ubuntu_pro',
];

export const ALL_KEYS: readonly string[] = [...Object.keys(MODULES), ...Object.keys(SHALLOW), ...OTHER_KNOWN];

export function specFor(key: string): Spec | undefined {
  return MODULES[key] ?? SHALLOW[key];
}
