import { describe, expect, it } from 'vitest';
import { isVirtnodeError } from '../lib/errors.ts';
import { checkNicsArrive, checkNicsLeave, movingNics, nicMoveRefusal, staysOnItsHost } from './movable.ts';
import type { Network } from './model.ts';

const lan = { index: 1, network: 'lan', mode: 'bridge' as const, bridge: 'lan0' };
const nat = { index: 2, network: 'default', mode: 'nat' as const, bridge: 'vnb1234' };
const net = (mode: Network['mode'], bridge: string): Network => ({ name: 'lan', id: 'x', mode, bridge, createdAt: '' });

describe('which NICs follow an instance to another host', () => {
  it('a bridged NIC moves to a host whose network of that name is bridged to the same bridge', () => {
    expect(staysOnItsHost(lan)).toBeUndefined();
    expect(nicMoveRefusal(lan, net('bridge', 'lan0'), 'h2')).toBeUndefined();
  });

  it('refuses a host without the network, or with it on another bridge or of another kind, naming both', () => {
    expect(nicMoveRefusal(lan, undefined, 'h2')).toBe('NIC 1 is on network lan, which host h2 does not have (create it there: `network create lan --bridge lan0`)');
    expect(nicMoveRefusal(lan, net('bridge', 'br1'), 'h2')).toBe('NIC 1 is on network lan, bridged to lan0; on host h2 that network is bridged to br1');
    expect(nicMoveRefusal(lan, net('isolated', 'lan0'), 'h2')).toBe('NIC 1 is on network lan, bridged to lan0; on host h2 that network is an isolated network');
  });

  it('refuses a host that has the network but not its bridge (a bridged network of the whole cluster)', () => {
    expect(nicMoveRefusal(lan, net('bridge', 'lan0'), 'h3', (b) => b === 'lan1')).toBe('NIC 1 is on network lan, bridged to lan0, which does not exist on host h3');
    expect(nicMoveRefusal(lan, net('bridge', 'lan0'), 'h3', (b) => b === 'lan0')).toBeUndefined();
  });

  it('NAT and isolated networks stay on their host, whatever the target has', () => {
    expect(staysOnItsHost(nat)).toContain('NIC 2 is on the nat network default, whose addresses, DHCP and NAT belong to this host');
    expect(nicMoveRefusal(nat, { mode: 'nat', bridge: 'vnb1234' }, 'h2')).toBe(staysOnItsHost(nat));
  });

  it('a NIC on a NAT network of the whole cluster moves to a host that has the cluster definition, not a local namesake', () => {
    const spanning = { ...nat, clusterWide: true };
    const clusterNat = { mode: 'nat' as const, bridge: 'vnb1234', cluster: { createdOn: 'h1', vni: 42 } };
    expect(staysOnItsHost(spanning)).toBeUndefined();
    expect(nicMoveRefusal(spanning, clusterNat, 'h2')).toBeUndefined();
    expect(nicMoveRefusal(spanning, { mode: 'nat', bridge: 'vnb9999' }, 'h2')).toBe("NIC 2 is on the cluster network default, which host h2 does not have as the cluster's (a network of its own by that name)");
    expect(nicMoveRefusal(spanning, undefined, 'h2')).toContain('(none of that name)');
    expect(movingNics([{ index: 2, network: 'default' }], () => ({ name: 'default', id: 'y', mode: 'nat', bridge: 'vnb1234', createdAt: '', cluster: { createdOn: 'h1' } }))).toEqual([spanning]);
  });

  it('the checks throw one error naming the field nics, with every refusal; user-mode NICs are not theirs', () => {
    const leave = (() => {
      try {
        checkNicsLeave([lan, nat]);
      } catch (e) {
        return e;
      }
    })();
    expect(isVirtnodeError(leave) && [leave.code, leave.field, leave.message.startsWith('nics: NIC 2 is on the nat network')]).toEqual(['HOST_UNSUPPORTED', 'nics', true]);
    expect(() => checkNicsArrive([lan], () => undefined, 'h3')).toThrow(/^nics: NIC 1 is on network lan, which host h3 does not have/);
    expect(() => checkNicsArrive([lan], () => net('bridge', 'lan0'), 'h3')).not.toThrow();
    expect(movingNics([{ index: 0, network: 'user' }, { index: 1, network: 'lan' }], () => net('bridge', 'lan0'))).toEqual([{ index: 1, network: 'lan', mode: 'bridge', bridge: 'lan0' }]);
  });
});
