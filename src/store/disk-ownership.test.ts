import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isVirtnodeError } from '../lib/errors.ts';
import type { ProcessIdentity } from '../lib/proc.ts';
import { LocalDiskOwnership } from './disk-ownership-local.ts';

describe('local disk ownership (one writer per disk)', () => {
  const dirs: string[] = [];
  const stores: LocalDiskOwnership[] = [];
  afterEach(() => {
    for (const s of stores.splice(0)) s.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const dead = new Set<number>();
  const alive = (p: ProcessIdentity) => !dead.has(p.pid);
  /** Two stores over one file: two virtnode state directories (or processes) on one host. */
  const pair = () => {
    const dir = mkdtempSync(join(tmpdir(), 'virtnode-owners-'));
    dirs.push(dir);
    const a = new LocalDiskOwnership(join(dir, 'owners.db'), { alive });
    const b = new LocalDiskOwnership(join(dir, 'owners.db'), { alive });
    stores.push(a, b);
    return [a, b] as const;
  };
  const hostA = { host: 'h', stateDir: '/a', instance: 'vm1' };
  const hostB = { host: 'h', stateDir: '/b', instance: 'vm2' };
  const disk = 'nfs://10.0.0.2/export/d.qcow2';

  it('refuses a second holder while the first is alive, naming it; all or none of a set of disks', async () => {
    const [a, b] = pair();
    await a.acquire([disk], hostA, { pid: 101, start: '1' });
    let error: unknown;
    try {
      await b.acquire(['nfs://10.0.0.2/export/other.qcow2', disk], hostB, { pid: 202, start: '1' });
    } catch (e) {
      error = e;
    }
    expect(isVirtnodeError(error, 'CONFLICT')).toBe(true);
    expect((error as Error).message).toBe(`disk ${disk} is in use by instance vm1 of state directory /a on host h (pid 101): vm2 would be a second writer`);
    expect(await b.claimOf('nfs://10.0.0.2/export/other.qcow2')).toBeUndefined(); // the first disk of the set was not kept
    expect((await b.claimOf(disk))?.holder).toEqual(hostA);
  });

  it('a release lets the next holder in; a release by someone else changes nothing', async () => {
    const [a, b] = pair();
    await a.acquire([disk], hostA, { pid: 101, start: '1' });
    await b.release([disk], hostB);
    expect((await a.claimOf(disk))?.holder).toEqual(hostA);
    await a.release([disk], hostA);
    expect(await a.claimOf(disk)).toBeUndefined();
    const [claim] = await b.acquire([disk], hostB, { pid: 202, start: '1' });
    expect(claim).toMatchObject({ holder: hostB, process: { pid: 202 } });
  });

  it('a dead holder (its process gone) is taken over, the revision moving on; the hand-over to QEMU keeps the claim', async () => {
    const [a, b] = pair();
    const [first] = await a.acquire([disk], hostA, { pid: 301, start: '1' });
    await a.handOver([disk], hostA, { pid: 302, start: '1' });
    expect((await a.claimOf(disk))?.process.pid).toBe(302);
    await expect(b.acquire([disk], hostB, { pid: 401, start: '1' })).rejects.toThrow(/in use by instance vm1/);
    dead.add(302);
    expect(await b.claimOf(disk)).toBeUndefined();
    const [taken] = await b.acquire([disk], hostB, { pid: 401, start: '1' });
    expect(taken!.holder).toEqual(hostB);
    expect(taken!.revision).toBeGreaterThan(first!.revision + 1);
  });
});
