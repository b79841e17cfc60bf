import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { guestRun, readSector, waitForBoot, writeSector } from '../helpers/guest-shell.ts';
import { type NfsServer, startNfsServer } from '../helpers/nfs-server.ts';
import { testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--memory', '256M', '--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

/**
 * Shared storage on one machine: a real nfs-ganesha (VFS FSAL) + rpcbind in a "storage host" namespace, QEMU and
 * qemu-img reaching it through their own NFS client (nfs://, libnfs; nothing is mounted), and two virtnode state
 * directories standing in for two hosts that share the host's disk-ownership guard.
 */
describe('nfs and shared-dir pools (ganesha, QEMU over nfs://, tiny guest under TCG)', { timeout: 600_000 }, () => {
  let nfs: NfsServer;
  const hostA = tempHome('virtnode-nfs-a-');
  const hostB = tempHome('virtnode-nfs-b-');
  const scratch = mkdtempSync(join(tmpdir(), 'virtnode-nfs-scratch-'));
  const env = { VIRTNODE_DISK_OWNERS: join(scratch, 'disk-owners.db') };
  const run = (home: string, args: string[]) => virtnode(home, args, { env });
  const ok = async (home: string, args: string[]) => {
    const r = await run(home, args);
    expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const refused = async (home: string, args: string[], code: number, message: RegExp | string) => {
    const r = await run(home, args);
    expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(code);
    expect(r.stderr).toMatch(message);
    return r.stderr;
  };
  const poolNames = async (home: string) => (JSON.parse(await ok(home, ['pool', 'ls', '--format', 'json'])) as Array<{ name: string }>).map((p) => p.name);
  const exported = () => readdirSync(nfs.exportPath).sort();

  beforeAll(async () => {
    nfs = await startNfsServer({ hostAddress: '10.231.7.1', serverAddress: '10.231.7.2' });
  });
  afterAll(async () => {
    for (const home of [hostA.home, hostB.home]) {
      for (const name of ['a', 'b', 'c', 'l1', 'a2']) await run(home, ['delete', '--force', name]);
    }
    hostA.cleanup();
    hostB.cleanup();
    await nfs?.stop();
    rmSync(scratch, { recursive: true, force: true });
    expect(existsSync(nfs.exportPath)).toBe(false);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(nfs.netns);
  });

  it('refuses bad pool input naming the field, changing nothing; makes an nfs pool after a MOUNT check', async () => {
    const { home } = hostA;
    await refused(home, ['pool', 'create', 'n', '--type', 'nfs', '--source', 'nocolon'], 2, '--source: "nocolon" is not SERVER:/EXPORT');
    await refused(home, ['pool', 'create', 'n', '--type', 'nfs', '--source', 'bad_host!:/x'], 2, '--source: "bad_host!" is not a host name or address');
    await refused(home, ['pool', 'create', 'n', '--type', 'nfs', '--source', '10.231.7.9:/x'], 2, /--source: cannot use NFS server 10\.231\.7\.9: cannot reach/);
    await refused(home, ['pool', 'create', 'n', '--type', 'nfs', '--source', '10.231.7.2:/not-exported'], 2, '--source: 10.231.7.2 does not export /not-exported');
    await refused(home, ['pool', 'create', 'n', '--type', 'nfs'], 2, '--source: is required for an nfs pool');
    await refused(home, ['pool', 'create', 'n', '--type', 'nfs', '--path', '/tmp'], 2, '--path: is for dir and shared-dir pools');
    await refused(home, ['pool', 'create', 'n', '--type', 'dir', '--source', nfs.source], 2, '--source: is for nfs pools, not dir');
    await refused(home, ['pool', 'create', 'n', '--type', 'ceph', '--path', '/tmp'], 2, '--type: "ceph" is not a pool type');
    expect(await poolNames(home)).toEqual(['default']);

    expect(await ok(home, ['pool', 'create', 'nfs1', '--type', 'nfs', '--source', nfs.source])).toBe(`Created nfs pool nfs1 at nfs://${nfs.address}${nfs.exportPath}\n`);
    await refused(home, ['pool', 'create', 'nfs2', '--type', 'nfs', '--source', `${nfs.source}/`], 4, `--source: ${nfs.source} is already pool nfs1`);
    const pools = JSON.parse(await ok(home, ['pool', 'ls', '--format', 'json'])) as Array<Record<string, unknown>>;
    expect(pools.find((p) => p['name'] === 'nfs1')).toMatchObject({ type: 'nfs', shared: true, source: nfs.source, volumes: 0 });
    expect((pools.find((p) => p['name'] === 'nfs1')!['capacity'] as number) > 0).toBe(true);
    expect(pools.find((p) => p['name'] === 'default')).toMatchObject({ type: 'dir', shared: false });
  });

  it('a shared-dir pool is a directory like dir, marked shared', async () => {
    const dir = join(scratch, 'shared');
    mkdirSync(dir);
    await ok(hostA.home, ['pool', 'create', 'shd', '--type', 'shared-dir', '--path', dir]);
    const info = JSON.parse(await ok(hostA.home, ['pool', 'info', 'shd', '--format', 'json'])) as Record<string, unknown>;
    expect(info).toMatchObject({ type: 'shared-dir', shared: true, path: dir });
    await ok(hostA.home, ['volume', 'create', 'onshared', '--size', '8M', '--pool', 'shd']);
    expect(readdirSync(dir)).toEqual(['onshared.qcow2']);
    await ok(hostA.home, ['volume', 'rm', 'onshared']);
    await ok(hostA.home, ['pool', 'rm', 'shd']);
  });

  it('volumes on the export: qcow2 and raw, sizes, resize, check, delete (no kernel mount)', async () => {
    const { home } = hostA;
    expect(await ok(home, ['volume', 'create', 'v1', '--size', '64M', '--pool', 'nfs1'])).toContain(`nfs://${nfs.address}${nfs.exportPath}/v1.qcow2`);
    await ok(home, ['volume', 'create', 'v2', '--size', '16M', '--pool', 'nfs1', '--format', 'raw']);
    expect(exported()).toEqual(['v1.qcow2', 'v2.raw']);
    await refused(home, ['volume', 'create', 'v3', '--size', '16M', '--pool', 'nfs1', '--preallocate'], 2, "--preallocate: QEMU's NFS client cannot preallocate");
    await refused(home, ['volume', 'convert', 'v2', '--format', 'qcow2'], 5, 'cannot convert a volume in nfs pool nfs1');
    expect(exported()).toEqual(['v1.qcow2', 'v2.raw']);
    expect(await ok(home, ['volume', 'resize', 'v1', '--size', '96M'])).toContain('from 64 MiB to 96 MiB');
    expect(await ok(home, ['volume', 'check', 'v1'])).toContain('no errors found');
    const volumes = JSON.parse(await ok(home, ['volume', 'ls', '--pool', 'nfs1', '--format', 'json'])) as Array<Record<string, unknown>>;
    expect(volumes).toMatchObject([
      { name: 'v1', format: 'qcow2', virtualSize: 96 * 2 ** 20 },
      { name: 'v2', format: 'raw', virtualSize: 16 * 2 ** 20 },
    ]);
    const pool = JSON.parse(await ok(home, ['pool', 'info', 'nfs1', '--format', 'json'])) as Record<string, unknown>;
    expect(pool).toMatchObject({ volumes: 2, volumeNames: ['v1', 'v2'], otherFiles: 0 });
    expect(pool['volumeAllocation'] as number).toBeGreaterThan(0);
    await ok(home, ['volume', 'rm', 'v2']);
    expect(exported()).toEqual(['v1.qcow2']);
  });

  it('boots the tiny guest with its disk on the export; a second instance on that disk is refused until the first stops', async () => {
    await ok(hostA.home, ['create', 'a', ...bootArgs]);
    await ok(hostA.home, ['disk', 'attach', 'a', 'v1']);
    await ok(hostA.home, ['start', 'a']);
    await waitForBoot(hostA.home, 'a');
    expect(await guestRun(hostA.home, 'a', writeSector('/dev/vda', 'WRITTEN-OVER-NFS'))).toBe('written');
    const url = `nfs://${nfs.address}${nfs.exportPath}/v1.qcow2`;
    const qemuArgs = readFileSync(`/proc/${(JSON.parse(await ok(hostA.home, ['info', 'a', '--format', 'json'])) as { pid: number }).pid}/cmdline`, 'utf8');
    expect(qemuArgs).toContain(`driver=nfs,node-name=disk1-file,server.type=inet,server.host=${nfs.address},path=${nfs.exportPath}/v1.qcow2`);

    // The same host: refused at define time, the disk being another instance's.
    await refused(hostA.home, ['create', 'c', ...bootArgs, '--disk', url], 4, `--disk: ${url} is already the disk of instance a`);
    // Another "host" (state directory) on the same export: QEMU's locking does not work over nfs://, virtnode refuses.
    await ok(hostB.home, ['create', 'b', ...bootArgs, '--disk', url]);
    const second = await refused(hostB.home, ['start', 'b'], 4, `disk ${url} is in use by instance a of state directory ${hostA.home}`);
    expect(second).toContain('b would be a second writer');
    expect((JSON.parse(await ok(hostB.home, ['info', 'b', '--format', 'json'])) as { state: string }).state).toBe('defined');

    await ok(hostA.home, ['stop', '--force', 'a']);
    await ok(hostB.home, ['start', 'b']);
    await waitForBoot(hostB.home, 'b');
    expect(await guestRun(hostB.home, 'b', readSector('/dev/vda'))).toBe('WRITTEN-OVER-NFS');
    await refused(hostA.home, ['start', 'a'], 4, `in use by instance b of state directory ${hostB.home}`);
    await ok(hostB.home, ['stop', '--force', 'b']);
    await ok(hostB.home, ['delete', 'b']);
  });

  it('launch --pool makes the disk on the export (backing: the local image) and delete removes it there', async () => {
    const { home } = hostA;
    const blank = join(scratch, 'blank.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', blank, '64M']);
    await ok(home, ['image', 'import', blank, '--name', 'blank']);
    await refused(home, ['launch', 'blank', '--name', 'l1', '--pool', 'nope', '--no-wait'], 3, 'pool nope does not exist');
    expect((JSON.parse(await ok(home, ['list', '--format', 'json'])) as Array<{ name: string }>).map((i) => i.name)).toEqual(['a']);
    await ok(home, ['launch', 'blank', '--name', 'l1', '--pool', 'nfs1', '--memory', '128M', '--no-wait']);
    const info = JSON.parse(await ok(home, ['info', 'l1', '--format', 'json'])) as { disks: Array<{ path: string }>; pid: number };
    expect(info.disks[0]!.path).toBe(`nfs://${nfs.address}${nfs.exportPath}/l1.disk0.qcow2`);
    expect(readFileSync(`/proc/${info.pid}/cmdline`, 'utf8')).toContain(`path=${nfs.exportPath}/l1.disk0.qcow2`);
    expect(exported()).toEqual(['l1.disk0.qcow2', 'v1.qcow2']);
    const chain = execFileSync('qemu-img', ['info', '-U', '--output=json', info.disks[0]!.path], { encoding: 'utf8' });
    expect((JSON.parse(chain) as { 'backing-filename': string })['backing-filename']).toMatch(/\/images\//);
    await ok(home, ['delete', '--force', 'l1']);
    expect(exported()).toEqual(['v1.qcow2']);
  });

  it('snapshots (internal, with memory) and a full clone of an instance whose disk is on the export', async () => {
    const { home } = hostA;
    await ok(home, ['start', 'a']);
    await waitForBoot(home, 'a', 2);
    await refused(home, ['snapshot', 'create', 'a', 'ext', '--disk-only'], 5, 'cannot take an external snapshot of a: disk disk1 (volume v1) is on an NFS export');
    expect(await ok(home, ['snapshot', 'create', 'a', 'live'])).toContain('with memory state');
    await ok(home, ['stop', '--force', 'a']);
    expect(await ok(home, ['snapshot', 'create', 'a', 'stopped'])).toContain('(disks only)');
    const chain = JSON.parse(await ok(home, ['volume', 'info', 'v1', '--format', 'json'])) as { chain: Array<{ snapshots?: Array<{ name: string }> }> };
    expect(chain.chain[0]!.snapshots!.map((s) => s.name).sort()).toEqual(['live', 'stopped']);
    await ok(home, ['snapshot', 'revert', 'a', 'live']);
    await ok(home, ['snapshot', 'rm', 'a', 'live']);
    await ok(home, ['snapshot', 'rm', 'a', 'stopped']);
    expect(await ok(home, ['clone', 'a', 'a2'])).toContain('Cloned instance a into a2');
    await ok(home, ['delete', 'a2']);
    await ok(home, ['delete', '--force', 'a']);
    await ok(home, ['volume', 'rm', 'v1']);
    expect(exported()).toEqual([]);
    await ok(home, ['pool', 'rm', 'nfs1']);
  });
});
