import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allocateAddress } from './allocate.ts';
import { parseLeases, renderDhcpHosts, renderDnsmasqConfig, renderHostsFile } from './dnsmasq-config.ts';
import { validateInterfaceName } from './interface-name.ts';
import { formatCidr, formatIpv4, overlaps, parseCidr, parseIpv4 } from './ipv4.ts';
import type { Network } from './model.ts';
import { bridgeName, nftTableName, tapName } from './names.ts';
import { findForwardDropChains, renderRuleset } from './nft.ts';
import { parseRoutes } from './routes.ts';
import { type NetworkCreateContext, validateNetworkCreate, validateStaticAddress } from './validate.ts';

function golden(name: string, text: string): void {
  const path = new URL(`./testdata/${name}`, import.meta.url);
  if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(path, text);
  expect(text).toBe(readFileSync(path, 'utf8'));
}

const nat: Network = {
  name: 'lab',
  id: '0a1b2c3d',
  mode: 'nat',
  bridge: 'vnb0a1b2c3d',
  ipv4: { subnet: '10.77.0.0/24', gateway: '10.77.0.1', dhcpStart: '10.77.0.2', dhcpEnd: '10.77.0.254' },
  domain: 'lab.internal',
  createdAt: '2026-01-01T00:00:00.000Z',
};
const isolated: Network = { ...nat, name: 'quiet', mode: 'isolated', ipv4: { ...nat.ipv4!, subnet: '10.78.0.0/24', gateway: '10.78.0.1', dhcpStart: '10.78.0.10', dhcpEnd: '10.78.0.20' }, domain: 'quiet.internal' };
const files = { config: '/s/n/dnsmasq.conf', pidfile: '/s/n/dnsmasq.pid', leases: '/s/n/leases', dhcpHosts: '/run/d/dhcp-hosts', hosts: '/run/d/hosts', log: '/s/n/dnsmasq.log', user: 'dnsmasq' };

describe('IPv4 and CIDR', () => {
  it('parses and formats addresses', () => {
    expect(parseIpv4('10.77.0.1')).toBe(0x0a4d0001);
    expect(formatIpv4(0xffffffff)).toBe('255.255.255.255');
    for (const bad of ['10.77.0', '10.77.0.256', '01.2.3.4', 'a.b.c.d', '1.2.3.4.5', '']) expect(parseIpv4(bad)).toBeUndefined();
  });
  it('parses CIDRs, strictly when asked', () => {
    expect(formatCidr(parseCidr('--subnet', '10.77.0.0/24', { strict: true }))).toBe('10.77.0.0/24');
    expect(() => parseCidr('--subnet', '10.77.0.5/24', { strict: true })).toThrow(/--subnet: "10.77.0.5\/24" has host bits set/);
    expect(() => parseCidr('--subnet', '10.77.0.0/33')).toThrow(/--subnet: "10.77.0.0\/33" is not an IPv4 CIDR/);
    expect(() => parseCidr('--subnet', '10.77.0.0')).toThrow(/not an IPv4 CIDR/);
  });
  it('detects overlap', () => {
    const a = parseCidr('a', '10.0.0.0/16');
    expect(overlaps(a, parseCidr('b', '10.0.5.0/24'))).toBe(true);
    expect(overlaps(a, parseCidr('b', '10.1.0.0/24'))).toBe(false);
    expect(overlaps(parseCidr('a', '10.0.0.0/24'), parseCidr('b', '10.0.0.255/32'))).toBe(true);
  });
  it('allocates the lowest free address of a range', () => {
    expect(allocateAddress('10.0.0.2', '10.0.0.4', ['10.0.0.2'])).toBe('10.0.0.3');
    expect(allocateAddress('10.0.0.2', '10.0.0.3', ['10.0.0.2', '10.0.0.3'])).toBeUndefined();
  });
});

describe('interface names', () => {
  it('accepts what Linux accepts and refuses the rest, naming the field', () => {
    expect(validateInterfaceName('--bridge', 'br0')).toBe('br0');
    expect(validateInterfaceName('--bridge', 'a'.repeat(15))).toHaveLength(15);
    expect(() => validateInterfaceName('--bridge', 'a'.repeat(16))).toThrow(/--bridge: .* longer than 15/);
    for (const bad of ['br/0', 'br 0', 'br:0', '', '..', 'br\t0']) expect(() => validateInterfaceName('--bridge', bad)).toThrow(/--bridge/);
  });
  it('derives host-wide names that fit and differ per id', () => {
    expect(bridgeName('0a1b2c3d')).toBe('vnb0a1b2c3d');
    expect(nftTableName('0a1b2c3d')).toBe('virtnode_0a1b2c3d');
    const tap = tapName('0b6f4a1e-8c4d-4e4f-9a55-2f1f0c7d3e11', 0);
    expect(tap).toMatch(/^vnt[0-9a-f]{10}$/);
    expect(tapName('0b6f4a1e-8c4d-4e4f-9a55-2f1f0c7d3e11', 1)).not.toBe(tap);
  });
});

describe('network create validation', () => {
  const context = (over: Partial<NetworkCreateContext> = {}): NetworkCreateContext => ({ existing: [], routes: [], bridgeExists: () => false, ...over });

  it('fills in defaults: NAT on 10.77.0.0/24, gateway .1, DHCP .2-.254, domain NAME.internal', () => {
    expect(validateNetworkCreate({ name: 'lab' }, context())).toEqual({
      name: 'lab',
      mode: 'nat',
      ipv4: { subnet: '10.77.0.0/24', gateway: '10.77.0.1', dhcpStart: '10.77.0.2', dhcpEnd: '10.77.0.254' },
      domain: 'lab.internal',
    });
  });
  it('takes a DHCP range inside the subnet', () => {
    const v = validateNetworkCreate({ name: 'lab', subnet: '192.168.90.0/24', dhcpRange: '192.168.90.100-192.168.90.150' }, context());
    expect(v.ipv4).toMatchObject({ dhcpStart: '192.168.90.100', dhcpEnd: '192.168.90.150' });
  });
  it.each([
    [{ subnet: '10.77.0.0/33' }, /--subnet: .*not an IPv4 CIDR/],
    [{ subnet: '10.77.0.9/24' }, /--subnet: .*host bits/],
    [{ subnet: '10.0.0.0/8' }, /--subnet: \/8 is out of range/],
    [{ dhcpRange: '10.77.1.2-10.77.1.9' }, /--dhcp-range: 10.77.1.2 is not a host address of 10.77.0.0\/24/],
    [{ dhcpRange: '10.77.0.9-10.77.0.2' }, /--dhcp-range: 10.77.0.9 comes after/],
    [{ dhcpRange: '10.77.0.1-10.77.0.9' }, /--dhcp-range: 10.77.0.1 is the gateway/],
    [{ dhcpRange: 'lots' }, /--dhcp-range: "lots" is not a range/],
    [{ domain: 'bad_domain!' }, /--domain/],
    [{ mode: 'bridge', bridge: 'br0' }, /--bridge: there is no bridge br0/],
    [{ mode: 'bridge', bridge: 'this-name-is-too-long' }, /--bridge: .*longer than 15/],
    [{ mode: 'bridge', bridge: 'br0', subnet: '10.1.0.0/24' }, /--subnet: does not apply to --bridge/],
    [{ name: 'Bad_Name' }, /name: "Bad_Name" is not a valid name/],
    [{ name: 'user' }, /name: "user" is reserved/],
  ])('refuses %o', (over, message) => {
    expect(() => validateNetworkCreate({ name: 'lab', ...over }, context())).toThrow(message);
  });
  it('refuses a subnet overlapping another network or a host route', () => {
    expect(() => validateNetworkCreate({ name: 'two', subnet: '10.77.0.128/25' }, context({ existing: [nat] }))).toThrow(/--subnet: 10.77.0.128\/25 overlaps network lab \(10.77.0.0\/24\)/);
    expect(() => validateNetworkCreate({ name: 'lab' }, context({ existing: [nat] }))).toThrow(/network lab already exists/);
    const routes = parseRoutes(JSON.stringify([{ dst: 'default', dev: 'eth0' }, { dst: '10.77.0.0/16', dev: 'eth1' }]));
    expect(() => validateNetworkCreate({ name: 'x', subnet: '10.77.0.0/24' }, context({ routes }))).toThrow(/--subnet: 10.77.0.0\/24 collides with the host route to 10.77.0.0\/16 \(dev eth1\)/);
    expect(validateNetworkCreate({ name: 'x', subnet: '10.99.0.0/24' }, context({ routes })).ipv4?.subnet).toBe('10.99.0.0/24');
  });
  it('without --subnet: the first /24 of 10.77.0.0/16 that no network or host route uses, then of 172.31.0.0/16; says so when none is left', () => {
    const other = (name: string, subnet: string): Network => ({ ...nat, name, ipv4: { ...nat.ipv4!, subnet } });
    const existing = [nat, other('b', '10.77.1.0/25'), other('c', '10.77.3.0/24')];
    const routes = parseRoutes(JSON.stringify([{ dst: '10.77.2.7', dev: 'eth1' }]));
    expect(validateNetworkCreate({ name: 'x', mode: 'isolated' }, context({ existing, routes }))).toMatchObject({
      mode: 'isolated',
      ipv4: { subnet: '10.77.4.0/24', gateway: '10.77.4.1', dhcpStart: '10.77.4.2', dhcpEnd: '10.77.4.254' },
    });
    const wide = parseRoutes(JSON.stringify([{ dst: '10.0.0.0/8', dev: 'vpn0' }]));
    expect(validateNetworkCreate({ name: 'x' }, context({ routes: wide })).ipv4?.subnet).toBe('172.31.0.0/24');
    const full = parseRoutes(JSON.stringify([{ dst: '10.0.0.0/8', dev: 'vpn0' }, { dst: '172.16.0.0/12', dev: 'vpn0' }]));
    expect(() => validateNetworkCreate({ name: 'x' }, context({ routes: full }))).toThrow(/--subnet: every \/24 of 10.77.0.0\/16 and 172.31.0.0\/16 is used by a network or a host route/);
  });
  it('takes a VNI in a cluster only, in range, not another network\'s, and never for --bridge', () => {
    const clustered = { clustered: true };
    expect(validateNetworkCreate({ name: 'x', subnet: '10.99.0.0/24', vni: 5000 }, context(clustered)).vni).toBe(5000);
    expect(() => validateNetworkCreate({ name: 'x', vni: 5000 }, context())).toThrow(/vni: applies only in a cluster/);
    for (const vni of [0, 16_777_216, 1.5]) expect(() => validateNetworkCreate({ name: 'x', vni }, context(clustered))).toThrow(/vni: .* is out of range/);
    const spanning: Network = { ...nat, cluster: { createdOn: 'h1', vni: 5000 } };
    expect(() => validateNetworkCreate({ name: 'x', subnet: '10.99.0.0/24', vni: 5000 }, context({ ...clustered, existing: [spanning] }))).toThrow(/vni: VXLAN 5000 is network lab's already/);
    expect(() => validateNetworkCreate({ name: 'lan', mode: 'bridge', bridge: 'br0', vni: 7 }, context({ ...clustered, bridgeExists: () => true }))).toThrow(/vni: does not apply to --bridge/);
  });
  it('accepts an existing bridge', () => {
    expect(validateNetworkCreate({ name: 'lan', mode: 'bridge', bridge: 'br0' }, context({ bridgeExists: (n) => n === 'br0' }))).toEqual({ name: 'lan', mode: 'bridge', bridge: 'br0' });
  });
  it('checks static addresses: inside, not the gateway, not taken', () => {
    const taken = new Map([['10.77.0.5', 'instance web']]);
    expect(validateStaticAddress('--ip', nat, '10.77.0.6', taken)).toBe('10.77.0.6');
    expect(() => validateStaticAddress('--ip', nat, '10.78.0.6', taken)).toThrow(/--ip: 10.78.0.6 is outside network lab \(10.77.0.0\/24\)/);
    expect(() => validateStaticAddress('--ip', nat, '10.77.0.1', taken)).toThrow(/--ip: 10.77.0.1 is the gateway/);
    expect(() => validateStaticAddress('--ip', nat, '10.77.0.255', taken)).toThrow(/outside/);
    expect(() => validateStaticAddress('--ip', nat, '10.77.0.5', taken)).toThrow(/--ip: 10.77.0.5 is already taken on network lab by instance web/);
    expect(() => validateStaticAddress('--ip', nat, 'ten', taken)).toThrow(/--ip: "ten" is not an IPv4 address/);
  });
});

describe('dnsmasq', () => {
  const reservations = [
    { mac: '52:54:00:12:34:56', address: '10.77.0.2', hostname: 'web' },
    { mac: '52:54:00:ab:cd:ef', address: '10.77.0.10', hostname: 'db' },
  ];
  it('writes the configuration of a NAT network (golden)', () => golden('nat.dnsmasq.conf', renderDnsmasqConfig(nat, files)));
  it('writes an isolated network without a router (golden)', () => golden('isolated.dnsmasq.conf', renderDnsmasqConfig(isolated, files)));
  it('writes one reservation and one host record per NIC', () => {
    expect(renderDhcpHosts(reservations)).toBe('52:54:00:12:34:56,10.77.0.2,web\n52:54:00:ab:cd:ef,10.77.0.10,db\n');
    expect(renderHostsFile(reservations, 'lab.internal')).toBe('10.77.0.2 web.lab.internal web\n10.77.0.10 db.lab.internal db\n');
  });
  it('parses the lease file', () => {
    const text = '1763900000 52:54:00:12:34:56 10.77.0.2 web 01:52:54:00:12:34:56\n0 52:54:00:AB:CD:EF 10.77.0.10 * *\nduid 00:01:00:01\n\ngarbage\n';
    expect(parseLeases(text)).toEqual([
      { expires: new Date(1763900000 * 1000), mac: '52:54:00:12:34:56', address: '10.77.0.2', hostname: 'web', clientId: '01:52:54:00:12:34:56' },
      { expires: undefined, mac: '52:54:00:ab:cd:ef', address: '10.77.0.10', hostname: undefined, clientId: undefined },
    ]);
  });
});

describe('nftables', () => {
  it('masquerades a NAT network in its own table (golden)', () => golden('nat.nft', renderRuleset(nat)));
  it('keeps an isolated network inside (golden)', () => golden('isolated.nft', renderRuleset(isolated)));
  it('finds forward chains with a drop policy in other tables', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'ip', name: 'filter' } },
        { chain: { family: 'ip', table: 'filter', name: 'FORWARD', type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
        { chain: { family: 'ip', table: 'filter', name: 'INPUT', type: 'filter', hook: 'input', prio: 0, policy: 'drop' } },
        { chain: { family: 'ip', table: 'virtnode_0a1b2c3d', name: 'forward', type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
        { chain: { family: 'inet', table: 'fw', name: 'fwd', type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } },
      ],
    });
    expect(findForwardDropChains(json, (t) => t.startsWith('virtnode_'))).toEqual([{ family: 'ip', table: 'filter', chain: 'FORWARD' }]);
  });
});
