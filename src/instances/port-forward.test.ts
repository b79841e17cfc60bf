import { describe, expect, it } from 'vitest';
import { parsePortForward } from './port-forward.ts';

describe('parsePortForward', () => {
  it('reads HOST:GUEST[/proto], on 127.0.0.1 unless told', () => {
    expect(parsePortForward('8080:80', undefined)).toEqual({ protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8080, guestPort: 80 });
    expect(parsePortForward('5353:53/udp', '0.0.0.0')).toEqual({ protocol: 'udp', hostAddress: '0.0.0.0', hostPort: 5353, guestPort: 53 });
  });
  it.each([
    ['80', undefined, /ports: "80" is not HOST:GUEST/],
    ['0:80', undefined, /ports: the host port 0 is out of range/],
    ['80:65536', undefined, /ports: the guest port 65536 is out of range/],
    ['80:80/icmp', undefined, /ports: "80:80\/icmp"/],
    ['80:80', '::1', /--address: "::1" is not an IPv4 address/],
  ])('refuses %s (address %s)', (text, address, message) => {
    expect(() => parsePortForward(text, address)).toThrow(message);
  });
});
