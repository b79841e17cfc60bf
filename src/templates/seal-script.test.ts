import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { repoFile } from './paths.ts';

const SCRIPT = repoFile('src/templates/seal.sh');

/** A root tree with what a used guest carries. */
function usedRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'virtnode-seal-script-'));
  const files: Record<string, string> = {
    'etc/machine-id': 'aaaabbbbccccddddeeeeffff00001111\n',
    'etc/ssh/ssh_host_rsa_key': 'k',
    'etc/ssh/ssh_host_rsa_key.pub': 'k',
    'etc/ssh/sshd_config': 'keep\n',
    'var/lib/cloud/instances/i-1/x': 'x',
    'var/lib/cloud/data/result.json': '{}',
    'var/lib/cloud/sem/config_x': 'x',
    'var/lib/cloud/seed/nocloud/meta-data': 'instance-id: i-1\n',
    'var/lib/cloud/seed/nocloud-net/user-data': '#cloud-config\n',
    'var/lib/cloud/scripts/per-boot/keep.sh': 'keep',
    'var/lib/dhcp/dhclient.eth0.leases': 'lease',
    'var/lib/NetworkManager/internal.lease': 'lease',
    'etc/udev/rules.d/70-persistent-net.rules': 'rule',
    'etc/udev/rules.d/99-local.rules': 'keep',
    'var/lib/systemd/random-seed': 'seed',
    'var/log/syslog': 'line\n',
    'var/log/syslog.1': 'old',
    'var/log/apt/history.log.1.gz': 'gz',
    'var/log/journal/aaaabbbbccccddddeeeeffff00001111/system.journal': 'j',
    'root/.bash_history': 'h',
    'home/ada/.bash_history': 'h',
    'home/ada/notes.txt': 'keep',
    'tmp/junk': 'j',
    'tmp/.hidden': 'j',
    'var/tmp/junk': 'j',
    'run/stale': 's',
  };
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  mkdirSync(join(root, 'var/lib/dbus'), { recursive: true });
  symlinkSync('/etc/machine-id', join(root, 'var/lib/dbus/machine-id'));
  return root;
}

describe('the sealing script (src/templates/seal.sh) on a root tree', () => {
  const roots: string[] = [];
  afterEach(() => {
    for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
  });

  it.each([
    ['dash', ['sh']],
    ['busybox ash (the appliance)', ['busybox', 'sh']],
  ])('under %s: removes every identity, keeps the rest, reports each change', (_shell, shell) => {
    const root = usedRoot();
    roots.push(root);
    const out = execFileSync(shell[0]!, [...shell.slice(1), SCRIPT, root, 'offline'], { encoding: 'utf8' });
    expect(out.trim().split('\n').at(-1)).toBe('SEAL-OK');
    expect(readFileSync(join(root, 'etc/machine-id'), 'utf8')).toBe('');
    expect(statSync(join(root, 'etc/machine-id')).mode & 0o777).toBe(0o444);
    const gone = [
      'var/lib/dbus/machine-id', 'etc/ssh/ssh_host_rsa_key', 'etc/ssh/ssh_host_rsa_key.pub', 'var/lib/cloud/instances', 'var/lib/cloud/data',
      'var/lib/cloud/sem', 'var/lib/cloud/seed/nocloud', 'var/lib/cloud/seed/nocloud-net', 'var/lib/dhcp/dhclient.eth0.leases', 'var/lib/NetworkManager/internal.lease', 'etc/udev/rules.d/70-persistent-net.rules',
      'var/lib/systemd/random-seed', 'var/log/syslog.1', 'var/log/apt/history.log.1.gz', 'var/log/journal/aaaabbbbccccddddeeeeffff00001111',
      'root/.bash_history', 'home/ada/.bash_history', 'tmp/junk', 'tmp/.hidden', 'var/tmp/junk', 'run/stale',
    ];
    for (const path of gone) expect(existsSync(join(root, path)), path).toBe(false);
    for (const path of ['etc/ssh/sshd_config', 'var/lib/cloud/scripts/per-boot/keep.sh', 'etc/udev/rules.d/99-local.rules', 'home/ada/notes.txt']) {
      expect(existsSync(join(root, path)), path).toBe(true);
    }
    expect(readFileSync(join(root, 'var/log/syslog'), 'utf8')).toBe('');
    expect(readdirSync(join(root, 'tmp'))).toEqual([]);
    expect(out).toContain('emptied /etc/machine-id\n');
    expect(out).toContain('removed /etc/ssh/ssh_host_rsa_key\n');
    expect(out).toContain('emptied /var/log/syslog\n');
    expect(out).not.toContain(root);
  });

  it('is idempotent: a second run changes nothing and says so', () => {
    const root = usedRoot();
    roots.push(root);
    execFileSync('sh', [SCRIPT, root, 'offline']);
    expect(execFileSync('sh', [SCRIPT, root, 'offline'], { encoding: 'utf8' })).toBe('SEAL-OK\n');
  });

  it('live mode leaves /run alone (a tmpfs the running system needs)', () => {
    const root = usedRoot();
    roots.push(root);
    execFileSync('sh', [SCRIPT, root, 'live']);
    expect(existsSync(join(root, 'run/stale'))).toBe(true);
  });
});
