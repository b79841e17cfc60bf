import { describe, expect, it } from 'vitest';
import { checkAll, cidr, dhcpRange, name, portForward, size, url, bridgeName, optional } from '../../web/src/lib/validate.ts';

/** The web console's as-you-type checks: what they accept must be what the API accepts, and they say why not. */
describe('web console form checks', () => {
  it('names follow the API pattern (a DNS label)', () => {
    for (const ok of ['a', 'web-1', 'x'.repeat(63)]) expect(name(ok), ok).toBeUndefined();
    for (const bad of ['', 'Web', 'a_b', '-a', 'a-', 'x'.repeat(64), 'a.b']) expect(name(bad), bad).toBeDefined();
  });

  it('subnets: IPv4 CIDR with host bits clear, /8 to /30, naming the network when host bits are set', () => {
    expect(cidr('10.77.0.0/24')).toBeUndefined();
    expect(cidr('192.168.4.0/30')).toBeUndefined();
    expect(cidr('10.77.0.1/24')).toBe('host bits are set: the network of this address is 10.77.0.0/24');
    expect(cidr('10.77.0.300/24')).toBe('10.77.0.300 is not an IPv4 address');
    expect(cidr('10.77.0.0/31')).toMatch(/prefix length/);
    expect(cidr('10.77.0.0')).toMatch(/CIDR/);
    expect(cidr('10.0.0.0/7')).toMatch(/prefix length/);
  });

  it('sizes as the core parses them, greater than zero', () => {
    for (const ok of ['512M', '10G', '1T', '1.5G', '64MiB', '1048576']) expect(size(ok), ok).toBeUndefined();
    for (const bad of ['', 'ten', '0', '-1G', '10X', '10Mi']) expect(size(bad), bad).toBeDefined();
  });

  it('ports, URLs, DHCP ranges and bridge names', () => {
    expect(portForward('8080:80')).toBeUndefined();
    expect(portForward('5353:53/udp')).toBeUndefined();
    expect(portForward('80')).toMatch(/HOST:GUEST/);
    expect(portForward('70000:80')).toBe('70000 is not a port (1-65535)');
    expect(portForward('0:80')).toBe('0 is not a port (1-65535)');
    expect(url('https://example.org/d.qcow2')).toBeUndefined();
    expect(url('ftp://example.org/d.qcow2')).toBeDefined();
    expect(dhcpRange('10.0.0.10-10.0.0.20')).toBeUndefined();
    expect(dhcpRange('10.0.0.10')).toBeDefined();
    expect(bridgeName('br0')).toBeUndefined();
    expect(bridgeName('a-very-long-bridge')).toMatch(/15/);
  });

  it('optional fields pass when empty; checkAll names each failing field', () => {
    expect(optional(name)('')).toBeUndefined();
    expect(optional(name)('Bad')).toBeDefined();
    expect(checkAll({ a: 'ok', b: 'Bad' }, { a: name, b: name })).toEqual({ b: expect.any(String) });
  });
});
