import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../exec/run.ts';
import { isVirtnodeError } from '../lib/errors.ts';
import { renderConfigDrive, renderMetaDataJson, renderNetworkData } from './config-drive.ts';
import { renderUserData, type SeedRequest } from './render.ts';
import { buildConfigDrive } from './seed.ts';

// Shaped like OpenSSH keys, not keys.
const HOST_PRIVATE = '-----BEGIN OPENSSH PRIVATE KEY-----\nRkFLRQ==\n-----END OPENSSH PRIVATE KEY-----\n';
const HOST_PUBLIC = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtF web1 host key (virtnode)';
const CLIENT_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIENMSUVOVENMSUVOVENMSUVOVENMSUVOVENMSUVOVENM virtnode@host';

const request: SeedRequest = {
  instanceId: 'i-3f0c2a9e-5d7b-4c1a-9e8f-0a1b2c3d4e5f',
  hostname: 'web1',
  defaultUser: { name: 'virtnode', sshAuthorizedKeys: [CLIENT_KEY], sudo: true },
  hostKeys: [{ type: 'ed25519', privateKey: HOST_PRIVATE, publicKey: HOST_PUBLIC }],
  userData: '#cloud-config\nruncmd:\n  - [touch, /run/marker]\n',
  network: { kind: 'dhcp', macs: ['52:54:00:AA:00:01'] },
};

describe('renderConfigDrive', () => {
  it('carries the NoCloud identity: instance-id as uuid, hostname, keys, and the very same user_data', () => {
    const files = renderConfigDrive(request);
    expect(Object.keys(files).sort()).toEqual(['openstack/latest/meta_data.json', 'openstack/latest/network_data.json', 'openstack/latest/user_data']);
    const meta = JSON.parse(files['openstack/latest/meta_data.json']!);
    expect(meta).toMatchObject({ uuid: request.instanceId, name: 'web1', hostname: 'web1', launch_index: 0, public_keys: { 'key-0': CLIENT_KEY } });
    expect(files['openstack/latest/user_data']).toBe(renderUserData(request).text);
    expect(files['openstack/latest/user_data']).toContain('ed25519_private');
    expect(files['openstack/latest/user_data']).toContain('/run/marker');
  });

  it('uses the FQDN as hostname when there is one', () => {
    expect(JSON.parse(renderMetaDataJson({ ...request, fqdn: 'web1.example.org' })).hostname).toBe('web1.example.org');
  });

  it('renders DHCP NICs as phy links matched by MAC, named in NIC order', () => {
    const data = JSON.parse(renderNetworkData({ ...request, network: { kind: 'dhcp', macs: ['52:54:00:AA:00:01', '52:54:00:aa:00:02'] } }));
    expect(data).toEqual({
      links: [
        { id: 'tap0', name: 'eth0', type: 'phy', ethernet_mac_address: '52:54:00:aa:00:01' },
        { id: 'tap1', name: 'eth1', type: 'phy', ethernet_mac_address: '52:54:00:aa:00:02' },
      ],
      networks: [
        { id: 'network0', link: 'tap0', type: 'ipv4_dhcp', network_id: 'network0' },
        { id: 'network1', link: 'tap1', type: 'ipv4_dhcp', network_id: 'network1' },
      ],
      services: [],
    });
  });

  it('renders a static NIC with netmask, gateway (as route and key), DNS and search', () => {
    const data = JSON.parse(
      renderNetworkData({
        ...request,
        network: {
          kind: 'nics',
          nics: [
            { mac: '52:54:00:aa:00:01', address: '10.0.2.15/24' },
            { mac: '52:54:00:aa:00:02', address: '10.77.0.50/20', gateway: '10.77.0.1', dns: ['10.77.0.1'], search: ['lab.internal'] },
          ],
        },
      }),
    );
    expect(data.networks[0]).toEqual({ id: 'network0', link: 'tap0', type: 'ipv4', network_id: 'network0', ip_address: '10.0.2.15', netmask: '255.255.255.0' });
    expect(data.networks[1]).toEqual({
      id: 'network1',
      link: 'tap1',
      type: 'ipv4',
      network_id: 'network1',
      ip_address: '10.77.0.50',
      netmask: '255.255.240.0',
      gateway: '10.77.0.1',
      routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.77.0.1' }],
      dns_nameservers: ['10.77.0.1'],
      dns_search: ['lab.internal'],
    });
    expect(data.services).toEqual([{ type: 'dns', address: '10.77.0.1' }]);
  });

  it('refuses what it cannot express, naming the field', () => {
    const codeAndField = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return isVirtnodeError(e) ? `${e.code} ${e.field}` : String(e);
      }
      return 'no error';
    };
    expect(codeAndField(() => renderConfigDrive({ ...request, network: { kind: 'user-config', text: 'version: 2\n' } }))).toBe('INVALID --network-config');
    expect(codeAndField(() => renderNetworkData({ ...request, network: { kind: 'dhcp', macs: ['52:54:00:aa:00:01', '52:54:00:AA:00:01'] } }))).toBe('INVALID network');
    expect(codeAndField(() => renderNetworkData({ ...request, network: { kind: 'dhcp', macs: ['nope'] } }))).toBe('INVALID network.nics[0].mac');
    expect(codeAndField(() => renderConfigDrive({ ...request, hostname: 'not a label' }))).toBe('INVALID hostname');
  });
});

describe('buildConfigDrive', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virtnode-configdrive-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes an ISO9660 volume labelled config-2 with openstack/latest/*, mode 0600', async () => {
    const out = join(dir, 'configdrive.iso');
    const files = renderConfigDrive(request);
    await buildConfigDrive(out, files);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    const blkid = await run(['blkid', '-p', '-o', 'export', out], { timeoutMs: 10_000 });
    expect(blkid.stdout).toMatch(/^LABEL=config-2$/m);
    expect(blkid.stdout).toMatch(/^TYPE=iso9660$/m);
    for (const [path, content] of Object.entries(files)) {
      const extracted = join(dir, path.replaceAll('/', '_'));
      await run(['xorriso', '-osirrox', 'on', '-indev', out, '-extract', `/${path}`, extracted], { timeoutMs: 10_000 });
      expect(await readFile(extracted, 'utf8')).toBe(content);
    }
  });

  it('refuses a path outside the drive and leaves nothing behind', async () => {
    const out = join(dir, 'bad.iso');
    await expect(buildConfigDrive(out, { '../escape': 'x' })).rejects.toMatchObject({ code: 'INVALID' });
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
