import { describe, expect, it } from 'vitest';
import { hotplugStanza, hotplugStanzaPath } from './hotplug-nic.ts';

describe('hotplugStanza', () => {
  it('is DHCP for that interface, up at boot and on hotplug, in its own file', () => {
    expect(hotplugStanzaPath('eth2')).toBe('/etc/network/interfaces.d/60-virtnode-eth2');
    const lines = hotplugStanza('eth2').split('\n');
    expect(lines.filter((l) => !l.startsWith('#'))).toEqual(['auto eth2', 'allow-hotplug eth2', 'iface eth2 inet dhcp', '']);
  });
});
