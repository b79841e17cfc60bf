import { describe, expect, it } from 'vitest';
import { formatIssues, formatPath, userDataKind, validateCloudConfig } from './validate.ts';
import type { ValidationIssue, ValidationResult } from './validate.ts';
import { closest, editDistance } from './validate/schema.ts';

const cc = (body: string): string => `#cloud-config\n${body}`;

function only(result: ValidationResult, severity: 'error' | 'warning'): ValidationIssue[] {
  return result.issues.filter((i) => i.severity === severity);
}

function single(result: ValidationResult, severity: 'error' | 'warning'): ValidationIssue {
  const found = only(result, severity);
  expect(found, JSON.stringify(result.issues)).toHaveLength(1);
  return found[0] as ValidationIssue;
}

describe('header', () => {
  it('accepts #cloud-config (and trailing blanks, CRLF) and returns the config', () => {
    for (const text of ['#cloud-config\nhostname: a\n', '#cloud-config  \nhostname: a\n', '#cloud-config\r\nhostname: a\r\n']) {
      const r = validateCloudConfig(text);
      expect(r.ok).toBe(true);
      expect(r.issues).toEqual([]);
      expect(r.config).toEqual({ hostname: 'a' });
    }
  });

  it('rejects a missing header at 1:1 with a hint about the other user-data types', () => {
    const r = validateCloudConfig('hostname: a\n');
    expect(r.ok).toBe(false);
    expect(r.config).toBeUndefined();
    const e = single(r, 'error');
    expect(e).toMatchObject({ line: 1, column: 1, path: '' });
    expect(e.message).toContain('#cloud-config');
    expect(e.hint).toContain('#!');
    expect(e.hint).toContain('#include');
    expect(e.hint).toContain('untouched');
  });

  it('names scripts and near-miss headers', () => {
    expect(single(validateCloudConfig('#!/bin/sh\necho hi\n'), 'error').message).toMatch(/script/);
    const near = single(validateCloudConfig('# Cloud-Config\nhostname: a\n'), 'error');
    expect(near.hint).toMatch(/write exactly "#cloud-config"/);
    expect(validateCloudConfig('#cloud-config-archive\n- a\n').ok).toBe(false);
    expect(validateCloudConfig('').ok).toBe(false);
  });
});

describe('YAML and the top level', () => {
  it('reports YAML syntax errors with line and column', () => {
    const r = validateCloudConfig(cc('hostname: a\nusers:\n  - name: "alice\n'));
    const e = single(r, 'error');
    expect(e.message).toMatch(/^YAML: /);
    expect(e.line).toBeGreaterThanOrEqual(4);
    expect(e.column).toBeGreaterThanOrEqual(1);
  });

  it('says "tabs" for tab indentation', () => {
    const e = single(validateCloudConfig(cc('users:\n\t- name: a\n')), 'error');
    expect(e.line).toBe(3);
    expect(e.hint).toMatch(/spaces/);
  });

  it('requires a mapping at the top level', () => {
    const list = single(validateCloudConfig(cc('- a\n- b\n')), 'error');
    expect(list).toMatchObject({ line: 2, column: 1 });
    expect(list.message).toMatch(/mapping.*got a list/);
    expect(single(validateCloudConfig(cc('')), 'error').message).toMatch(/empty/);
  });

  it('reads YAML 1.1 like PyYAML: yes/off are booleans, bare 0644 is 420', () => {
    const r = validateCloudConfig(cc('package_update: yes\nssh_pwauth: off\nwrite_files:\n  - path: /x\n    permissions: 0644\n'));
    expect(r.config?.['package_update']).toBe(true);
    expect(r.config?.['ssh_pwauth']).toBe(false);
    const e = single(r, 'error');
    expect(e).toMatchObject({ path: 'write_files[0].permissions', line: 6, column: 18 });
    expect(e.hint).toBe("YAML reads a bare 0644 as the number 420; quote it: permissions: '0644'");
  });

  it('warns about duplicate keys at the second occurrence', () => {
    const w = single(validateCloudConfig(cc('hostname: a\ntimezone: UTC\nhostname: b\n')), 'warning');
    expect(w).toMatchObject({ path: 'hostname', line: 4, column: 1 });
  });
});

describe('unknown keys', () => {
  it('warns with a suggestion for a close misspelling, pointing at the key', () => {
    const r = validateCloudConfig(cc('hostname: a\npakages: [nginx]\n'));
    expect(r.ok).toBe(true);
    const w = single(r, 'warning');
    expect(w).toMatchObject({ path: 'pakages', line: 3, column: 1, hint: 'did you mean "packages"?' });
  });

  it('gives no suggestion when nothing is close', () => {
    const w = single(validateCloudConfig(cc('completely_unrelated_thing: 1\n')), 'warning');
    expect(w.hint).toBeUndefined();
    expect(w.message).toMatch(/unknown key "completely_unrelated_thing"/);
  });

  it('treats unknown keys inside a user as errors, like cloud-init', () => {
    const e = single(validateCloudConfig(cc('users:\n  - name: a\n    shel: /bin/sh\n')), 'error');
    expect(e).toMatchObject({ path: 'users[0].shel', line: 4, column: 5, hint: 'did you mean "shell"?' });
  });

  it('edit distance and suggestions', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(closest('runcmnd', ['bootcmd', 'runcmd'])).toBe('runcmd');
    expect(closest('ssh-pwauth', ['ssh_pwauth'])).toBe('ssh_pwauth');
    expect(closest('xyz', ['runcmd'])).toBeUndefined();
  });
});

describe('module checks, with paths and positions', () => {
  it('points at the offending value', () => {
    const text = cc('users:\n  - default\n  - name: alice\n    sudo: 5\n    lock_passwd: "yes"\n');
    const errors = only(validateCloudConfig(text), 'error');
    expect(errors.map((e) => [e.path, e.line, e.column])).toEqual([
      ['users[1].sudo', 5, 11],
      ['users[1].lock_passwd', 6, 18],
    ]);
    expect(errors[1]?.hint).toMatch(/without quotes/);
  });

  it('requires user names, write_files paths and power_state mode', () => {
    expect(single(validateCloudConfig(cc('users:\n  - gecos: x\n')), 'error')).toMatchObject({ path: 'users[0]', message: 'missing required key "name"' });
    expect(single(validateCloudConfig(cc('write_files:\n  - content: x\n')), 'error').message).toMatch(/"path"/);
    expect(single(validateCloudConfig(cc('power_state:\n  delay: 1\n')), 'error').message).toMatch(/"mode"/);
  });

  it('accepts the forms cloud-init accepts', () => {
    const ok = [
      'users:\n  - default\n  - name: a\n    sudo: false\n  - name: b\n    sudo: null\n  - name: c\n    sudo: ["ALL=(ALL) ALL"]\n',
      'runcmd:\n  - echo a\n  - [ls, -l]\n',
      'packages:\n  - nginx\n  - [curl, "7.88"]\n',
      'mounts:\n  - [/dev/vdb, /data]\n',
      'manage_etc_hosts: localhost\n',
      'resize_rootfs: noblock\n',
      'growpart:\n  mode: "off"\n',
      'power_state:\n  mode: poweroff\n  delay: now\n',
      'ntp:\n',
      'write_files:\n  - path: /a\n    encoding: gz+b64\n    permissions: "0600"\n    append: true\n    defer: false\n',
      'chpasswd:\n  users:\n    - name: a\n      type: RANDOM\n',
    ];
    for (const body of ok) expect(validateCloudConfig(cc(body)).issues, body).toEqual([]);
  });

  it('rejects wrong values', () => {
    const bad: Array<[string, string]> = [
      ['packages:\n  - [a, b, c]\n', 'packages[0]'],
      ['mounts:\n  - [a, b, c, d, e, f, g]\n', 'mounts[0]'],
      ['growpart:\n  mode: always\n', 'growpart.mode'],
      ['resize_rootfs: maybe\n', 'resize_rootfs'],
      ['power_state:\n  mode: shutdown\n', 'power_state.mode'],
      ['write_files:\n  - path: /a\n    encoding: base65\n', 'write_files[0].encoding'],
      ['ssh_keys:\n  dss_private: x\n', 'ssh_keys.dss_private'],
      ['chpasswd:\n  users:\n    - name: a\n      password: x\n      type: plain\n', 'chpasswd.users[0].type'],
      ['ntp:\n  servers: a.example\n', 'ntp.servers'],
      ['runcmd:\n  - echo a: b\n', 'runcmd[0]'],
      ['apt: [a]\n', 'apt'],
    ];
    for (const [body, path] of bad) {
      const r = validateCloudConfig(cc(body));
      expect(r.ok, body).toBe(false);
      expect(only(r, 'error').map((e) => e.path), body).toContain(path);
    }
  });
});

describe('plaintext passwords', () => {
  const HINT = /openssl passwd -6.*mkpasswd -m sha-512/;

  it('warns on plain_text_passwd, unhashed passwd and chpasswd text entries', () => {
    for (const body of [
      'users:\n  - name: a\n    plain_text_passwd: hunter2\n',
      'users:\n  - name: a\n    passwd: hunter2\n',
      'chpasswd:\n  users:\n    - name: a\n      password: hunter2\n      type: text\n',
      'chpasswd:\n  list:\n    - a:hunter2\n',
      'password: hunter2\n',
    ]) {
      const r = validateCloudConfig(cc(body));
      expect(r.ok, body).toBe(true);
      const hinted = only(r, 'warning').filter((w) => HINT.test(w.hint ?? ''));
      expect(hinted, body).toHaveLength(1);
    }
  });

  it('accepts crypt hashes silently', () => {
    for (const hash of ['$6$salt$abc', '$5$salt$abc', '$1$salt$abc', '$y$j9T$salt$abc', '$2b$10$abc']) {
      const r = validateCloudConfig(cc(`users:\n  - name: a\n    passwd: '${hash}'\n`));
      expect(r.issues, hash).toEqual([]);
    }
  });
});

describe('userDataKind', () => {
  it('classifies by the first line', () => {
    expect(userDataKind('#cloud-config\na: 1\n')).toBe('cloud-config');
    expect(userDataKind('\uFEFF#cloud-config\n')).toBe('cloud-config');
    expect(userDataKind('#!/bin/bash\necho\n')).toBe('script');
    expect(userDataKind('#include\nhttp://x\n')).toBe('include');
    expect(userDataKind('#include-once\nhttp://x\n')).toBe('include');
    expect(userDataKind('## template: jinja\n#cloud-config\n')).toBe('jinja');
    expect(userDataKind('Content-Type: multipart/mixed; boundary="x"\n')).toBe('mime');
    expect(userDataKind('MIME-Version: 1.0\n')).toBe('mime');
    expect(userDataKind('#cloud-config-archive\n')).toBe('unknown');
    expect(userDataKind('hostname: a\n')).toBe('unknown');
    expect(userDataKind('')).toBe('unknown');
  });
});

describe('formatIssues and paths', () => {
  it('prints compiler-style lines with indented hints', () => {
    const r = validateCloudConfig(cc('hostnme: a\nusers:\n  - name: a\n    sudo: 5\n'));
    expect(formatIssues(r, 'user-data.yaml')).toBe(
      [
        'user-data.yaml:2:1: warning: hostnme: unknown key "hostnme": cloud-init will ignore it',
        '  hint: did you mean "hostname"?',
        'user-data.yaml:5:11: error: users[0].sudo: expected a sudo rule string, a list of rules, false or null, got integer 5',
        '  hint: quote the value so YAML keeps it as a string',
      ].join('\n'),
    );
  });

  it('omits missing positions and empty paths', () => {
    const text = formatIssues({ ok: false, issues: [{ severity: 'error', path: '', message: 'boom' }] }, 'f');
    expect(text).toBe('f: error: boom');
    expect(formatIssues({ ok: true, issues: [] }, 'f')).toBe('');
  });

  it('formats paths', () => {
    expect(formatPath(['users', 0, 'sudo'])).toBe('users[0].sudo');
    expect(formatPath(['ssh_keys', 'odd key'])).toBe('ssh_keys["odd key"]');
    expect(formatPath([])).toBe('');
  });
});
