import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DISK_KEYS, type DiskOwnerRecord, EtcdDiskOwnership } from '../../src/cluster/disk-ownership-etcd.ts';
import { EtcdKv } from '../../src/cluster/etcd-kv.ts';
import { KEYS } from '../../src/cluster/model.ts';
import { type Claim, type HostUsage, PLACEMENT_KEYS, moveClaim } from '../../src/cluster/placement.ts';
import { isVirtnodeError } from '../../src/lib/errors.ts';
import { selfIdentity } from '../../src/lib/proc.ts';
import { startTestEtcd, type TestEtcd } from '../helpers/etcd.ts';

/**
 * Disk ownership across hosts on real etcd: one writer per disk, refused naming the disk and the holder while the
 * holder's host is alive, taken over once it holds no lease; concurrent claims and concurrent failover
 * transactions (claim + room + disk ownership in one) have exactly one winner.
 */
describe('disk ownership in etcd (real etcd)', () => {
  let etcd: TestEtcd;
  let kv: EtcdKv;
  const holder = (host: string, instance: string) => ({ host: 'ignored', stateDir: `/state/${host}`, instance });
  const alive = (host: string) => kv.txn([], [{ put: KEYS.alive(host), value: '{}' }]);
  const dead = (host: string) => kv.txn([], [{ delete: KEYS.alive(host) }]);
  const owner = async (disk: string) => {
    const e = await kv.get(DISK_KEYS.disk(disk));
    return e === undefined ? undefined : (JSON.parse(e.value) as DiskOwnerRecord);
  };
  const me = selfIdentity();

  beforeAll(async () => {
    etcd = await startTestEtcd(1);
    kv = new EtcdKv({ urls: etcd.clientUrls });
  });
  afterAll(async () => {
    await kv?.close();
    await etcd?.stop();
  });

  it('a disk held by an instance of a live host is refused on another, naming the disk and the holder; taken over once that host holds no lease', async () => {
    const h1 = new EtcdDiskOwnership(() => kv, 'h1');
    const h2 = new EtcdDiskOwnership(() => kv, 'h2');
    await Promise.all([alive('h1'), alive('h2')]);
    const disk = '/shared/a.qcow2';
    await h1.acquire([disk], holder('h1', 'a'), me);
    expect(await owner(disk)).toMatchObject({ disk, host: 'h1', instance: 'a', process: me });
    const refused = await h2.acquire([disk, '/shared/other.qcow2'], holder('h2', 'b'), me).catch((e: unknown) => e);
    expect(isVirtnodeError(refused, 'CONFLICT')).toBe(true);
    expect((refused as Error).message).toBe(`disk ${disk} is in use by instance a of state directory /state/h1 on host h1 (pid ${me.pid}): b would be a second writer`);
    // All or none: the other disk was not claimed either.
    expect(await owner('/shared/other.qcow2')).toBeUndefined();
    // Only the holder releases it.
    await h2.release([disk], holder('h2', 'a'));
    expect(await owner(disk)).toMatchObject({ host: 'h1' });
    // The holder's host fenced itself (no lease): another host may take the disk over.
    await dead('h1');
    expect(await h2.claimOf(disk)).toBeUndefined();
    await h2.acquire([disk], holder('h2', 'b'), me);
    expect(await owner(disk)).toMatchObject({ host: 'h2', instance: 'b' });
    await h2.release([disk], holder('h2', 'b'));
    expect(await owner(disk)).toBeUndefined();
  });

  it('ten hosts claiming one disk at once: exactly one wins', async () => {
    const hosts = Array.from({ length: 10 }, (_, i) => `c${i}`);
    await Promise.all(hosts.map(alive));
    const disk = '/shared/race.qcow2';
    const results = await Promise.allSettled(hosts.map((h) => new EtcdDiskOwnership(() => kv, h).acquire([disk], holder(h, `i-${h}`), me)));
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    for (const r of lost) expect(isVirtnodeError(r.reason, 'CONFLICT') || isVirtnodeError(r.reason, 'BUSY')).toBe(true);
    expect(hosts.map((h) => `i-${h}`)).toContain((await owner(disk))!.instance);
  });

  it('daemons racing to fail an instance over: one transaction wins, moving claim, room and disk ownership together', async () => {
    await dead('x1');
    const claim: Claim = { instance: 'f', host: 'x1', cpus: 1, memoryBytes: 128 << 20, diskBytes: 0, pool: 'default', nonce: 'n', claimedAt: new Date().toISOString() };
    const usage: HostUsage = { cpus: 1, memoryBytes: 128 << 20, diskBytes: {}, instances: 1, groups: {} };
    const disk = '/shared/f.qcow2';
    const record: DiskOwnerRecord = { disk, host: 'x1', instance: 'f', stateDir: '/state/x1', process: { pid: 1, start: '1' }, at: new Date().toISOString() };
    await kv.txn([], [
      { put: PLACEMENT_KEYS.claim('f'), value: JSON.stringify(claim) },
      { put: PLACEMENT_KEYS.usage('x1'), value: JSON.stringify(usage) },
      { put: DISK_KEYS.disk(disk), value: JSON.stringify(record) },
    ]);
    const targets = ['y1', 'y2', 'y3', 'y4', 'y5'];
    const results = await Promise.allSettled(
      targets.map((to) => moveClaim(kv, 'f', 'x1', to, () => ({ guards: [{ key: KEYS.alive('x1'), modRevision: 0 }], writes: [] }), { once: true, disks: 'move' })),
    );
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [targets[i]!] : []));
    expect(won).toHaveLength(1);
    const winner = won[0]!;
    expect((JSON.parse((await kv.get(PLACEMENT_KEYS.claim('f')))!.value) as Claim).host).toBe(winner);
    expect(await owner(disk)).toMatchObject({ host: winner, instance: 'f', process: { pid: 0 } });
    expect(JSON.parse((await kv.get(PLACEMENT_KEYS.usage('x1')))!.value)).toMatchObject({ cpus: 0, instances: 0 });
    expect(JSON.parse((await kv.get(PLACEMENT_KEYS.usage(winner)))!.value)).toMatchObject({ cpus: 1, instances: 1 });
    for (const t of targets.filter((t) => t !== winner)) expect(await kv.get(PLACEMENT_KEYS.usage(t))).toBeUndefined();
    // The reserved ownership (pid 0) is the winner's: its start there renews it; an instance of another host is refused.
    await alive(winner);
    const again = await new EtcdDiskOwnership(() => kv, 'y9').acquire([disk], holder('y9', 'g'), me).catch((e: unknown) => e);
    expect(isVirtnodeError(again, 'CONFLICT')).toBe(true);
    await new EtcdDiskOwnership(() => kv, winner).acquire([disk], holder(winner, 'f'), me);
    expect(await owner(disk)).toMatchObject({ host: winner, instance: 'f', process: me });
  });

  it("a live move of an instance on a shared pool: its disk's owner becomes the target's running QEMU with the claim; the source's release is then a no-op", async () => {
    await Promise.all([alive('m1'), alive('m2')]);
    const claim: Claim = { instance: 'mv', host: 'm1', cpus: 1, memoryBytes: 128 << 20, diskBytes: 0, pool: 'shared', nonce: 'n', claimedAt: new Date().toISOString() };
    const usage: HostUsage = { cpus: 1, memoryBytes: 128 << 20, diskBytes: {}, instances: 1, groups: {} };
    const disk = '/shared/mv.qcow2';
    await kv.txn([], [
      { put: PLACEMENT_KEYS.claim('mv'), value: JSON.stringify(claim) },
      { put: PLACEMENT_KEYS.usage('m1'), value: JSON.stringify(usage) },
    ]);
    const source = new EtcdDiskOwnership(() => kv, 'm1');
    await source.acquire([disk], holder('m1', 'mv'), { pid: 1, start: '1' });
    await moveClaim(kv, 'mv', 'm1', 'm2', undefined, { disks: 'move', diskHolder: { process: me, stateDir: '/state/m2' } });
    expect((JSON.parse((await kv.get(PLACEMENT_KEYS.claim('mv')))!.value) as Claim).host).toBe('m2');
    expect(await owner(disk)).toMatchObject({ disk, host: 'm2', instance: 'mv', stateDir: '/state/m2', process: me });
    // The source's QEMU, quitting, gives back nothing it no longer holds; another instance is refused.
    await source.release([disk], holder('m1', 'mv'));
    expect(await owner(disk)).toMatchObject({ host: 'm2', process: me });
    const refused = await new EtcdDiskOwnership(() => kv, 'm1').acquire([disk], holder('m1', 'other'), me).catch((e: unknown) => e);
    expect(isVirtnodeError(refused, 'CONFLICT')).toBe(true);
    // The target's stop gives it back.
    await new EtcdDiskOwnership(() => kv, 'm2').release([disk], holder('m2', 'mv'));
    expect(await owner(disk)).toBeUndefined();
  });
});
