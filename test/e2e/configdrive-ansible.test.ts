/**
 * End to end on the Debian image under TCG, one boot: `launch --seed configdrive` gives the guest its identity
 * through an OpenStack config drive read by cloud-init's ConfigDrive datasource (hostname, instance-id, SSH host
 * keys checked strictly, user-data's write_files and runcmd, network), and `virtnode inventory` drives Debian's
 * ansible-core against it (`ansible-inventory --list`, `ansible all -m ping` with strict host key checking).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.ts';
import { tempHome, VIRTNODE_BIN, virtnode } from '../helpers/cli.ts';
import { debianImage } from '../helpers/debian-image.ts';

const LAUNCH_TIMEOUT_MS = 600_000;

interface Info {
  name: string;
  instanceId: string;
  ssh: { user: string; address: string; hostKeyFingerprints: string[] };
  readiness?: { detail: string };
}

const USER_DATA = `#cloud-config
write_files:
  - path: /etc/virtnode-test/configdrive
    content: "written from the config drive\\n"
runcmd:
  - [sh, -c, "echo ran > /var/tmp/configdrive-runcmd"]
`;

describe('launch --seed configdrive, and Ansible through virtnode inventory', () => {
  const { home, cleanup } = tempHome('virtnode-e2e-cd-');
  const work = mkdtempSync(join(tmpdir(), 'virtnode-e2e-cd-work-'));
  const knownHosts = join(home, 'ssh', 'known_hosts');
  const inventoryScript = join(work, 'inventory.sh');
  const ansibleEnv = {
    ...process.env,
    HOME: work,
    ANSIBLE_LOCAL_TEMP: join(work, 'ansible-tmp'),
    ANSIBLE_HOST_KEY_CHECKING: 'True',
    ANSIBLE_PYTHON_INTERPRETER: 'auto_silent',
    ANSIBLE_INVENTORY_ENABLED: 'script',
    ANSIBLE_NOCOLOR: '1',
    // No shared master connection: each run makes (and verifies) its own, so the known_hosts check is real.
    ANSIBLE_SSH_ARGS: '-o ControlMaster=no -o ControlPersist=no',
  };
  let info: Info;
  let launchOutput = '';

  const vexec = async (...command: string[]) => {
    const r = await virtnode(home, ['exec', 'cd1', '--', ...command]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  /** ssh as virtnode's user with virtnode's key, the host key checked against virtnode's known_hosts only. */
  const ssh = (command: string): string => {
    const [host, port] = info.ssh.address.split(':') as [string, string];
    return execFileSync(
      'ssh',
      ['-i', join(home, 'ssh', 'id_ed25519'), '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-p', port, `${info.ssh.user}@${host}`, command],
      { encoding: 'utf8', timeout: 60_000 },
    );
  };

  beforeAll(async () => {
    const image = debianImage();
    writeFileSync(join(work, 'user-data.yaml'), USER_DATA);
    writeFileSync(inventoryScript, `#!/bin/sh\nVIRTNODE_HOME='${home}' exec '${VIRTNODE_BIN}' inventory "$@"\n`);
    chmodSync(inventoryScript, 0o755);
    const imported = await virtnode(home, ['image', 'import', image, '--name', 'debian-12']);
    expect(imported.code, imported.stderr).toBe(0);
    const r = await virtnode(home, ['launch', 'debian-12', '--name', 'cd1', '--memory', '1G', '--seed', 'configdrive', '--user-data', join(work, 'user-data.yaml')], { timeoutMs: LAUNCH_TIMEOUT_MS });
    launchOutput = `${r.stdout}\n${r.stderr}`;
    expect(r.code, launchOutput).toBe(0);
    info = JSON.parse((await virtnode(home, ['info', 'cd1', '--format', 'json'])).stdout) as Info;
  }, LAUNCH_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    await virtnode(home, ['delete', '--force', 'cd1']);
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it("cloud-init took the identity from the config drive (ConfigDrive datasource, virtnode's instance-id)", async () => {
    expect(launchOutput).toMatch(/\] seed +OpenStack config drive \(config-2\)/);
    expect(info.readiness?.detail).toMatch(/^done \(datasource ConfigDrive/);
    const status = await vexec('cloud-init', 'status', '--long');
    expect(status).toMatch(/^status: done$/m);
    expect(status).toMatch(/DataSourceConfigDrive \[net,ver=2\]\[source=\/dev\/vd/);
    expect(status).not.toMatch(/^errors:\s*\n\s+-/m);
    expect((await vexec('cat', '/run/cloud-init/.instance-id')).trim()).toBe(info.instanceId);
    expect((await vexec('sudo', '-n', 'blkid', '-s', 'LABEL', '-o', 'value', '-t', 'LABEL=config-2')).trim()).toBe('config-2');
  });

  it('hostname, SSH host key (strictly checked), write_files, runcmd and the network came through', async () => {
    expect(ssh('hostname').trim()).toBe('cd1');
    expect(ssh('cat /etc/virtnode-test/configdrive')).toBe('written from the config drive\n');
    expect(ssh('cat /var/tmp/configdrive-runcmd')).toBe('ran\n');
    const fingerprint = (await vexec('sudo', '-n', 'ssh-keygen', '-l', '-E', 'sha256', '-f', '/etc/ssh/ssh_host_ed25519_key.pub')).split(' ')[1];
    expect(info.ssh.hostKeyFingerprints).toContain(fingerprint);
    // network_data.json became cloud-init's network config: eth0 by MAC, DHCP.
    expect(ssh('cat /etc/network/interfaces.d/50-cloud-init')).toMatch(/iface eth0 inet dhcp/);
    expect(ssh('ip -4 -o addr show dev eth0')).toContain('10.0.2.15/24');
  });

  it('ansible-inventory lists the instance from `virtnode inventory`', async () => {
    const r = await run(['ansible-inventory', '-i', inventoryScript, '--list'], { timeoutMs: 120_000, env: ansibleEnv });
    const inv = JSON.parse(r.stdout) as Record<string, { hosts?: string[] }> & { _meta: { hostvars: Record<string, Record<string, unknown>> } };
    const [, port] = info.ssh.address.split(':');
    expect(inv._meta.hostvars['cd1']).toMatchObject({ ansible_host: '127.0.0.1', ansible_port: Number(port), ansible_user: info.ssh.user });
    expect(inv['image_debian_12']!.hosts).toEqual(['cd1']);
    expect(inv['network_user']!.hosts).toEqual(['cd1']);
    const host = await run([inventoryScript, '--host', 'cd1'], { timeoutMs: 60_000 });
    expect(JSON.parse(host.stdout)).toMatchObject({ ansible_user: info.ssh.user, ansible_port: Number(port) });
  });

  it('ansible all -m ping answers pong with strict host key checking, and fails against another known_hosts', async () => {
    const ping = await run(['ansible', 'all', '-i', inventoryScript, '-m', 'ping', '-o'], { timeoutMs: 180_000, env: ansibleEnv });
    expect(ping.stdout).toMatch(/^cd1 \| SUCCESS => .*"ping": "pong"/m);
    const empty = join(work, 'empty_known_hosts');
    writeFileSync(empty, '');
    // Exit code 4: a host was unreachable.
    const refused = await run(['ansible', 'all', '-i', inventoryScript, '-m', 'ping', '-o', '-e', `ansible_ssh_common_args='-o UserKnownHostsFile=${empty} -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null'`], {
      timeoutMs: 180_000,
      env: ansibleEnv,
      okCodes: [4],
    });
    expect(refused.stdout).toMatch(/^cd1 \| UNREACHABLE!/m);
    expect(refused.stdout).toContain('Host key verification failed');
  });
});
