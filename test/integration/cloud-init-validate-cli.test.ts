import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';

describe('virtnode cloud-init validate', () => {
  const { home, cleanup } = tempHome();
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-cc-'));
  afterAll(() => {
    cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('accepts a valid cloud-config', async () => {
    const path = file('ok.yaml', '#cloud-config\nhostname: web1\nusers:\n  - name: ada\n    sudo: ALL=(ALL) NOPASSWD:ALL\n    ssh_authorized_keys: [ssh-ed25519 AAAA ada]\n');
    const r = await virtnode(home, ['cloud-init', 'validate', path]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${path}: valid cloud-config\n`);
  });

  it('reports errors with line and column and exits 2', async () => {
    const path = file('bad.yaml', '#cloud-config\nwrite_files:\n  - path: /etc/x\n    permissions: 0644\n');
    const r = await virtnode(home, ['cloud-init', 'validate', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`${path}:4:\\d+: error: write_files\\[0\\]\\.permissions`));
    expect(r.stderr).toContain("'0644'");
  });

  it('warns about plaintext passwords and unknown keys, but accepts', async () => {
    const path = file('warn.yaml', "#cloud-config\nhostnme: x\nusers:\n  - name: bob\n    plain_text_passwd: hunter2\n");
    const r = await virtnode(home, ['cloud-init', 'validate', path]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: hostnme: unknown key "hostnme"[^\n]*\n  hint: did you mean "hostname"\?/);
    expect(r.stderr).toMatch(/openssl passwd -6|mkpasswd/);
    expect(r.stderr).not.toContain('hunter2'); // secrets are never echoed back
  });

  it('a YAML syntax error names the line', async () => {
    const path = file('syntax.yaml', '#cloud-config\nruncmd:\n  - [echo, "unterminated\n');
    const r = await virtnode(home, ['cloud-init', 'validate', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/syntax\.yaml:\d+:\d+: error/);
  });

  it('a missing file is NOT_FOUND', async () => {
    const r = await virtnode(home, ['cloud-init', 'validate', join(dir, 'missing.yaml')]);
    expect(r.code).toBe(3);
  });
});
