import { describe, expect, it } from 'vitest';
import { portForwardTable, renderPortForwards } from './port-forward-nft.ts';

describe('port forwards as DNAT', () => {
  it('names a table per instance and forwards loopback and any-address ports, masquerading loopback sources', () => {
    const table = portForwardTable('0a1b2c3d-4e5f-6789-abcd-ef0123456789');
    expect(table).toBe('virtnode_pf_0a1b2c3d4e5f6789');
    const text = renderPortForwards(table, [
      { protocol: 'tcp', hostAddress: '127.0.0.1', hostPort: 8080, guestAddress: '10.77.0.5', guestPort: 80 },
      { protocol: 'udp', hostAddress: '0.0.0.0', hostPort: 5353, guestAddress: '10.77.0.5', guestPort: 53 },
    ]);
    expect(text.startsWith(`add table ip ${table}\ndelete table ip ${table}\n`)).toBe(true);
    expect(text.match(/ip daddr 127\.0\.0\.1 tcp dport 8080 dnat to 10\.77\.0\.5:80/g)).toHaveLength(2); // prerouting and output
    expect(text.match(/fib daddr type local udp dport 5353 dnat to 10\.77\.0\.5:53/g)).toHaveLength(2);
    expect(text).toContain('type nat hook output priority -100;');
    expect(text.match(/ip saddr 127\.0\.0\.0\/8 ip daddr 10\.77\.0\.5 masquerade/g)).toHaveLength(1);
  });
});
