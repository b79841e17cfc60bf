import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { InstanceView } from '../api/schemas.ts';
import { run } from '../exec/run.ts';
import { buildInventory, groupName } from './ansible-inventory.ts';

function view(name: string, over: Partial<InstanceView> = {}): InstanceView {
  return {
    name,
    type: 'vm',
    state: 'running',
    uuid: `uuid-${name}`,
    smbiosUuid: `smbios-${name}`,
    cpus: 1,
    memoryMiB: 512,
    accel: 'tcg',
    disks: [],
    nics: [{ index: 0, mac: '52:54:00:00:00:01', network: 'user' }],
    image: { name: 'debian-12', sha256: 'ab' },
    ssh: { user: 'virtnode', address: '127.0.0.1:40022', hostKeyFingerprints: [] },
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
    ...over,
  };
}

const OPTIONS = { host: 'Lab-Host.1', knownHosts: '/var/lib/virtnode/ssh/known_hosts', identityFile: '/var/lib/virtnode/ssh/id_ed25519' };

const web = view('web', { nics: [{ index: 0, mac: '52:54:00:00:00:01', network: 'user' }, { index: 1, mac: '52:54:00:00:00:02', network: 'lab', lease: '10.77.0.20' }] });
const db = view('db', { ssh: { user: 'admin', address: '127.0.0.1:40023', hostKeyFingerprints: [] }, image: { name: 'tmpl-db', sha256: 'cd' } });
const stopped = view('old', { state: 'stopped' });
const { ssh: _ssh, image: _image, ...created } = view('bare');

describe('buildInventory', () => {
  it('lists running launched instances with SSH vars and groups by network, image, host and state', () => {
    const inv = buildInventory([web, db, stopped, created], OPTIONS);
    expect(Object.keys(inv._meta.hostvars)).toEqual(['db', 'web']);
    expect(inv._meta.hostvars['web']).toEqual({
      ansible_host: '127.0.0.1',
      ansible_port: 40022,
      ansible_user: 'virtnode',
      ansible_ssh_private_key_file: '/var/lib/virtnode/ssh/id_ed25519',
      ansible_ssh_common_args: '-o UserKnownHostsFile=/var/lib/virtnode/ssh/known_hosts -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null',
      virtnode_name: 'web',
      virtnode_uuid: 'uuid-web',
      virtnode_state: 'running',
      virtnode_image: 'debian-12',
      virtnode_networks: ['user', 'lab'],
      virtnode_addresses: { lab: '10.77.0.20' },
    });
    expect(inv._meta.hostvars['db']!.ansible_user).toBe('admin');
    expect(inv['network_user']).toEqual({ hosts: ['db', 'web'] });
    expect(inv['network_lab']).toEqual({ hosts: ['web'] });
    expect(inv['image_debian_12']).toEqual({ hosts: ['web'] });
    expect(inv['image_tmpl_db']).toEqual({ hosts: ['db'] });
    expect(inv['host_lab_host_1']).toEqual({ hosts: ['db', 'web'] });
    expect(inv['state_running']).toEqual({ hosts: ['db', 'web'] });
    expect(inv['virtnode']).toEqual({ hosts: ['db', 'web'] });
    expect(inv['all']!.children).toEqual(['ungrouped', 'host_lab_host_1', 'image_debian_12', 'image_tmpl_db', 'network_lab', 'network_user', 'state_running', 'virtnode']);
    expect(Object.keys(inv).some((k) => k.startsWith('label'))).toBe(false); // instances have no labels yet
  });

  it('is an empty but valid inventory without instances', () => {
    expect(buildInventory([], OPTIONS)).toEqual({ _meta: { hostvars: {} }, all: { children: ['ungrouped'] }, ungrouped: { hosts: [] } });
  });

  it('makes group names Ansible accepts', () => {
    expect(groupName('image', 'Debian-12.qcow2')).toBe('image_debian_12_qcow2');
  });
});

describe("the inventory as Debian's ansible-inventory reads it", () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtnode-inventory-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads through the script plugin with every host, group and var', async () => {
    const json = join(dir, 'inventory.json');
    writeFileSync(json, JSON.stringify(buildInventory([web, db], OPTIONS)));
    const script = join(dir, 'inventory.sh');
    writeFileSync(script, `#!/bin/sh\nexec cat '${json}'\n`);
    chmodSync(script, 0o755);
    const env = { ...process.env, ANSIBLE_LOCAL_TEMP: join(dir, 'tmp'), HOME: dir, ANSIBLE_INVENTORY_ENABLED: 'script' };
    const listed = await run(['ansible-inventory', '-i', script, '--list'], { timeoutMs: 60_000, env });
    const parsed = JSON.parse(listed.stdout) as Record<string, { hosts?: string[]; children?: string[] }> & { _meta: { hostvars: Record<string, Record<string, unknown>> } };
    expect(parsed._meta.hostvars['web']).toMatchObject({ ansible_host: '127.0.0.1', ansible_port: 40022, ansible_user: 'virtnode' });
    expect(parsed['network_lab']!.hosts).toEqual(['web']);
    expect(parsed['all']!.children).toEqual(expect.arrayContaining(['network_user', 'image_debian_12', 'host_lab_host_1', 'virtnode']));
    expect(listed.stderr).not.toMatch(/WARNING/);
    const graph = await run(['ansible-inventory', '-i', script, '--graph', 'image_tmpl_db'], { timeoutMs: 60_000, env });
    expect(graph.stdout).toMatch(/@image_tmpl_db:\n\s+\|--db/);
  });
});
