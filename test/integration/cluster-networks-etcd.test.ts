import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../src/cluster/etcd-kv.ts';
import { KEYS } from '../../src/cluster/model.ts';
import { EtcdNetworks, NETWORK_KEYS, forgetHostNetworkRecords } from '../../src/cluster/networks-etcd.ts';
import { isVirtnodeError } from '../../src/lib/errors.ts';
import type { Network } from '../../src/network/model.ts';
import { startTestEtcd, type TestEtcd } from '../helpers/etcd.ts';

/**
 * The records of cluster-wide networks on a real etcd: definitions created once (name, VNI and overlapping
 * subnets), NICs and their addresses claimed per host, a moved NIC's address following it, everything gone with
 * the definition or the host; the DHCP role taken over by one host when its host is offline.
 */

const net = (name: string, vni: number, id = `${vni.toString(16).padStart(8, '0')}`, subnet = '10.77.0.0/24'): Network => ({
  name,
  id,
  mode: 'nat',
  bridge: `vnb${id}`,
  ipv4: { subnet, gateway: subnet.replace(/\.0\/\d+$/, '.1'), dhcpStart: subnet.replace(/\.0\/\d+$/, '.2'), dhcpEnd: subnet.replace(/\.0\/\d+$/, '.100') },
  domain: `${name}.internal`,
  cluster: { createdOn: 'h1', vni },
  createdAt: new Date(0).toISOString(),
});

async function refusal(p: Promise<unknown>): Promise<{ code: string; field: string | undefined; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isVirtnodeError(e)) return { code: e.code, field: e.field, message: e.message };
    throw e;
  }
  throw new Error('not refused');
}

describe('cluster network records on real etcd', () => {
  let etcd: TestEtcd;
  let kv: EtcdKv;
  const span = (host: string, address: string) => new EtcdNetworks(() => kv, () => ({ host, address }));
  beforeAll(async () => {
    etcd = await startTestEtcd(1);
    kv = new EtcdKv({ urls: etcd.clientUrls });
    for (const [name, address] of [['h1', '10.1.0.11'], ['h2', '10.1.0.12'], ['h3', '10.1.0.13']] as const) {
      await kv.txn([], [{ put: KEYS.host(name), value: JSON.stringify({ name, address, apiUrl: `https://${address}:7443`, etcdMember: false, joinedAt: '' }) }]);
    }
    await kv.txn([], [{ put: KEYS.alive('h1'), value: '{}' }, { put: KEYS.alive('h2'), value: '{}' }]);
  });
  afterAll(async () => {
    await kv?.close();
    await etcd?.stop();
  });

  it('two hosts defining one name at once: one wins, the other is refused naming `name`; a VNI taken is refused naming `vni`', async () => {
    const results = await Promise.allSettled([span('h1', '10.1.0.11').define(net('lab', 100, 'aaaa0001')), span('h2', '10.1.0.12').define({ ...net('lab', 101, 'aaaa0002'), cluster: { createdOn: 'h2', vni: 101 } })]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(lost.reason).toMatchObject({ code: 'CONFLICT', field: 'name' });
    expect(String(lost.reason.message)).toMatch(/^network lab already exists in the cluster \(created on host h[12]\)$/);
    const defs = await span('h3', '10.1.0.13').definitions();
    expect(defs.map((d) => d.name)).toEqual(['lab']);
    // The loser's VNI was not claimed; the winner's is.
    const winnerVni = defs[0]!.cluster!.vni!;
    expect(await refusal(span('h3', '10.1.0.13').define(net('other', winnerVni, 'bbbb0001')))).toMatchObject({ code: 'CONFLICT', field: 'vni', message: `vni: VXLAN ${winnerVni} is network lab's already` });
    expect((await kv.list(NETWORK_KEYS.networks)).entries).toHaveLength(1);
    expect((await kv.list('/virtnode/network-vnis/')).entries.map((e) => e.value)).toEqual(['lab']);
  });

  it('peers are the other online hosts', async () => {
    expect(await span('h1', '10.1.0.11').peers()).toEqual(['10.1.0.12']);
    expect(await span('h3', '10.1.0.13').peers()).toEqual(['10.1.0.11', '10.1.0.12']);
  });

  it('addresses are unique cluster-wide; every host sees every reservation; a moved NIC keeps its address', async () => {
    const lab = (await span('h1', '10.1.0.11').definitions())[0]!;
    const h1 = span('h1', '10.1.0.11');
    const h2 = span('h2', '10.1.0.12');
    await h1.publish(lab, [{ mac: '52:54:00:00:00:01', address: '10.77.0.2', hostname: 'a' }]);
    const all = await h2.publish(lab, [{ mac: '52:54:00:00:00:02', address: '10.77.0.3', hostname: 'b' }]);
    expect(all.map((n) => [n.hostname, n.address]).sort()).toEqual([['a', '10.77.0.2'], ['b', '10.77.0.3']]);
    await h2.refreshTaken(['lab']);
    expect([...h2.takenElsewhere('lab')]).toEqual([['10.77.0.2', { owner: 'instance a on host h1', mac: '52:54:00:00:00:01' }]]);
    // Another NIC on an address h1 holds: refused naming --ip and the holder; nothing of it recorded.
    expect(await refusal(h2.publish(lab, [{ mac: '52:54:00:00:00:02', address: '10.77.0.3', hostname: 'b' }, { mac: '52:54:00:00:00:03', address: '10.77.0.2', hostname: 'c' }]))).toMatchObject({
      code: 'CONFLICT',
      field: '--ip',
      message: '--ip: 10.77.0.2 is already taken on network lab by instance a on host h1',
    });
    expect((await kv.get(NETWORK_KEYS.nicsOf('lab', 'h2')))!.value).not.toContain('52:54:00:00:00:03');
    expect(await h1.usersElsewhere('lab')).toEqual([{ instance: 'b', host: 'h2' }]);
    // b moves to h1: h1 records the same NIC (MAC and instance) and takes its address over.
    await h1.publish(lab, [
      { mac: '52:54:00:00:00:01', address: '10.77.0.2', hostname: 'a' },
      { mac: '52:54:00:00:00:02', address: '10.77.0.3', hostname: 'b' },
    ]);
    expect(JSON.parse((await kv.get(NETWORK_KEYS.address('lab', '10.77.0.3')))!.value)).toMatchObject({ host: 'h1', mac: '52:54:00:00:00:02' });
    // Until h2 forgets it, it is listed twice, reserved once.
    expect((await h1.publish(lab, [{ mac: '52:54:00:00:00:01', address: '10.77.0.2', hostname: 'a' }, { mac: '52:54:00:00:00:02', address: '10.77.0.3', hostname: 'b' }])).length).toBe(2);
  });

  it('a removed host is forgotten; a removed definition takes every record with it', async () => {
    const lab = (await span('h1', '10.1.0.11').definitions())[0]!;
    await forgetHostNetworkRecords(kv, 'h2');
    expect(await kv.get(NETWORK_KEYS.nicsOf('lab', 'h2'))).toBeUndefined();
    expect(await span('h1', '10.1.0.11').usersElsewhere('lab')).toEqual([]);
    await span('h3', '10.1.0.13').undefine(lab);
    for (const prefix of [NETWORK_KEYS.networks, '/virtnode/network-vnis/', NETWORK_KEYS.nicsAll, '/virtnode/network-addresses/']) {
      expect((await kv.list(prefix)).entries, prefix).toEqual([]);
    }
  });

  it('two hosts defining different names with overlapping subnets at once: one wins, the other is refused naming `--subnet` and the winner', async () => {
    for (let round = 0; round < 5; round++) {
      const a = { ...net('wide', 200 + round, `cccc000${round}`, '10.78.0.0/16'), cluster: { createdOn: 'h1', vni: 200 + round } };
      const b = { ...net('narrow', 300 + round, `dddd000${round}`, '10.78.5.0/24'), cluster: { createdOn: 'h2', vni: 300 + round } };
      const results = await Promise.allSettled([span('h1', '10.1.0.11').define(a), span('h2', '10.1.0.12').define(b)]);
      expect(results.filter((r) => r.status === 'fulfilled'), `round ${round}`).toHaveLength(1);
      const [winner, loser] = results[0]!.status === 'fulfilled' ? [a, b] : [b, a];
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(lost.reason).toMatchObject({ code: 'CONFLICT', field: '--subnet' });
      expect(String(lost.reason.message)).toBe(`--subnet: ${loser.ipv4!.subnet} overlaps network ${winner.name} (${winner.ipv4!.subnet}, created on host ${winner.cluster.createdOn})`);
      // Nothing of the loser recorded: neither its definition nor its VNI.
      expect((await span('h3', '10.1.0.13').definitions()).map((d) => d.name)).toEqual([winner.name]);
      expect(await kv.get(NETWORK_KEYS.vni(loser.cluster.vni))).toBeUndefined();
      await span('h1', '10.1.0.11').undefine(winner);
    }
    // A subnet apart from every other is still defined.
    await span('h1', '10.1.0.11').define(net('apart', 400, 'eeee0001', '10.79.0.0/24'));
    await span('h1', '10.1.0.11').undefine(net('apart', 400, 'eeee0001', '10.79.0.0/24'));
  });

  it('a DHCP host offline: of two online hosts taking the role at once one wins; an online DHCP host keeps it; an offline host takes nothing', async () => {
    // h3 has no live key (offline); h1 and h2 are online.
    const lab = { ...net('ha', 500, 'ffff0001', '10.80.0.0/24'), cluster: { createdOn: 'h3', vni: 500 } };
    await span('h3', '10.1.0.13').define(lab);
    expect((await span('h3', '10.1.0.13').takeOverDhcp('ha'))!.cluster).toEqual({ createdOn: 'h3', vni: 500 });
    const [x, y] = await Promise.all([span('h1', '10.1.0.11').takeOverDhcp('ha'), span('h2', '10.1.0.12').takeOverDhcp('ha')]);
    const winner = x!.cluster!.dhcpHost!;
    expect(['h1', 'h2']).toContain(winner);
    expect(y!.cluster).toEqual({ createdOn: 'h3', vni: 500, dhcpHost: winner });
    expect((await span('h3', '10.1.0.13').definition('ha'))!.cluster).toEqual({ createdOn: 'h3', vni: 500, dhcpHost: winner });
    // h3 comes back online: the role stays with the winner (online), h3 takes nothing back.
    await kv.txn([], [{ put: KEYS.alive('h3'), value: '{}' }]);
    expect((await span('h3', '10.1.0.13').takeOverDhcp('ha'))!.cluster!.dhcpHost).toBe(winner);
    const other = winner === 'h1' ? span('h2', '10.1.0.12') : span('h1', '10.1.0.11');
    expect((await other.takeOverDhcp('ha'))!.cluster!.dhcpHost).toBe(winner);
    expect(await other.takeOverDhcp('nosuch')).toBeUndefined();
    await kv.txn([], [{ delete: KEYS.alive('h3') }]);
    await span('h1', '10.1.0.11').undefine(lab);
  });
});
