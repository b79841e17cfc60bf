import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdKv } from '../../src/cluster/etcd-kv.ts';
import { KEYS } from '../../src/cluster/model.ts';
import { EtcdNetworks, NETWORK_KEYS, forgetHostNetworkRecords } from '../../src/cluster/networks-etcd.ts';
import { isVirtnodeError } from '../../src/lib/errors.ts';
import type { Network } from '../../src/network/model.ts';
import { startTestEtcd, type TestEtcd } from '../helpers/etcd.ts';

/**
 * The records of cluster-wide networks on a real etcd: definitions created once (name and VNI), NICs and their
 * addresses claimed per host, a moved NIC's address following it, everything gone with the definition or the host.
 */

const net = (name: string, vni: number, id = `${vni.toString(16).padStart(8, '0')}`): Network => ({
  name,
  id,
  mode: 'nat',
  bridge: `vnb${id}`,
  ipv4: { subnet: '10.77.0.0/24', gateway: '10.77.0.1', dhcpStart: '10.77.0.2', dhcpEnd: '10.77.0.254' },
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
});
