import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageView } from '../../src/api/schemas.ts';
import { qemuPidsUnder } from '../helpers/cli.ts';
import { type SimCluster, type SimHost, createSimHosts, destroyKeepingLogs, formCluster, listOn as list, ok, requestOn, statusOn as status } from '../helpers/cluster-hosts.ts';
import { eventually } from '../helpers/daemon.ts';
import { testGuest } from '../helpers/test-guest.ts';

/**
 * Images across a cluster of three simulated hosts (netns, real daemons and etcd members): an image imported on
 * one host is launched on another, which fetches it over the cluster API (mutual TLS) by its sha256, verifies
 * it and stores it under the same name; a transfer cut by the serving daemon's death resumes with HTTP Range on
 * the next launch; a damaged copy on the serving host is refused and leaves nothing behind.
 */

const LAUNCH = ['--memory', '128M', '--seed', 'http', '--no-wait'];
const MIB = 1024 * 1024;

/** A bootable image of the tiny test guest: an ext4 holding its kernel, initramfs and an EXTLINUX entry, as qcow2. */
function tinyImage(dir: string): string {
  const guest = testGuest();
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'boot', 'extlinux'), { recursive: true });
  execFileSync('cp', [guest.vmlinuz, join(tree, 'boot', 'vmlinuz')]);
  execFileSync('cp', [guest.initrd, join(tree, 'boot', 'initrd.img')]);
  writeFileSync(join(tree, 'boot', 'extlinux', 'extlinux.conf'), `DEFAULT tiny\nLABEL tiny\n  LINUX /boot/vmlinuz\n  INITRD /boot/initrd.img\n  APPEND ${guest.cmdline}\n`);
  const raw = join(dir, 'tiny.raw');
  execFileSync('truncate', ['-s', '32M', raw]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, raw]);
  const qcow2 = join(dir, 'tiny-img.qcow2');
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
  return qcow2;
}

/** A qcow2 of `mib` MiB of random data (no boot files: it boots through the firmware, which finds nothing). */
function randomImage(dir: string, name: string, mib: number): string {
  const raw = join(dir, `${name}.raw`);
  execFileSync('dd', ['if=/dev/urandom', `of=${raw}`, 'bs=1M', `count=${mib}`, 'status=none']);
  const qcow2 = join(dir, `${name}.qcow2`);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
  return qcow2;
}

async function imagesOn(h: SimHost): Promise<ImageView[]> {
  return JSON.parse(await ok(h, ['image', 'ls', '--format', 'json'])) as ImageView[];
}

/** Partial downloads in a host's image store (name → size). */
function partials(h: SimHost): Map<string, number> {
  const dir = join(h.home, 'images', '.partial');
  const out = new Map<string, number>();
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir)) if (/^[0-9a-f]{32}$/.test(f)) out.set(f, statSync(join(dir, f)).size);
  return out;
}

/** Files left in the image store's scratch directory. */
function scratch(h: SimHost): string[] {
  const dir = join(h.home, 'images', '.tmp');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Slows what a host sends from its cluster API port (tc htb on its link); the rest of its traffic is untouched. */
function throttleClusterApi(h: SimHost, rate: string): () => void {
  const tc = (...args: string[]) => execFileSync('ip', ['netns', 'exec', h.netns, 'tc', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  tc('qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '1:', 'htb', 'default', '10');
  tc('class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '10gbit');
  tc('class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', rate, 'ceil', rate);
  tc('filter', 'add', 'dev', 'eth0', 'parent', '1:', 'protocol', 'ip', 'u32', 'match', 'ip', 'sport', '7443', '0xffff', 'flowid', '1:20');
  return () => {
    try {
      tc('qdisc', 'del', 'dev', 'eth0', 'root');
    } catch {
      /* gone with its namespace */
    }
  };
}

describe('images across a cluster of simulated hosts (netns, real daemons and etcd, mutual TLS)', () => {
  let sim: SimCluster;
  let h: SimHost[];
  let work = '';
  let tinySha = '';
  beforeAll(async () => {
    sim = await createSimHosts(3);
    h = sim.hosts;
    await Promise.all(h.map((x) => x.startDaemon()));
    await formCluster(h);
    work = join(h[0]!.home, 'work');
    mkdirSync(work);
  }, 180_000);
  afterAll(async () => {
    await destroyKeepingLogs(sim, 'cluster-images');
  });

  it('an image only h1 holds is fetched by h2 for a launch there; a transfer cut by the serving daemon dying resumes with Range on the next launch', async () => {
    const file = tinyImage(work);
    await ok(h[0]!, ['image', 'import', file, '--name', 'tiny-img']);
    const [mine] = await imagesOn(h[0]!);
    tinySha = mine!.sha256;
    expect(mine).toMatchObject({ name: 'tiny-img' });
    for (const x of [h[1]!, h[2]!]) expect(await imagesOn(x)).toEqual([]);

    // h1 sends its image slowly; while h2 is fetching it, h1's daemon is killed.
    const unthrottle = throttleClusterApi(h[0]!, '8mbit');
    let resumedAt = 0;
    try {
      const first = h[1]!.cli(['launch', 'tiny-img', '--name', 'p1', ...LAUNCH, '--target', 'h2'], { timeoutMs: 180_000 });
      const size = mine!.fileSize;
      resumedAt = await eventually(() => {
        const got = [...partials(h[1]!).values()][0];
        return got !== undefined && got > size / 4 ? got : undefined;
      }, 60_000, 'a quarter of the image on h2');
      await h[0]!.stopDaemon('SIGKILL');
        const cut = await first;
      expect(cut.code).not.toBe(0);
      expect(cut.stderr).toMatch(/^error: image: fetching tiny-img from h1 failed: /m);
      expect(cut.stderr).toContain('resume');
    } finally {
      unthrottle();
    }
    // Nothing was stored or launched, but the part fetched so far is kept.
    expect(await imagesOn(h[1]!)).toEqual([]);
    expect(qemuPidsUnder(h[1]!.home)).toEqual([]);
    const kept = [...partials(h[1]!).values()];
    expect(kept).toHaveLength(1);
    expect(kept[0]!).toBeGreaterThanOrEqual(resumedAt);

    // h1 comes back once its old lease has run out (before that, its old live record would say it is online).
    await eventually(async () => ((await status(h[1]!)).hosts.find((x) => x.name === 'h1')?.state === 'offline' ? true : undefined), 30_000, 'h1 offline');
    await h[0]!.startDaemon();
    await eventually(async () => ((await status(h[1]!)).hosts.find((x) => x.name === 'h1')?.state === 'online' ? true : undefined), 30_000, 'h1 online again');
    // The launch's phases (stderr) say what happened to the image.
    const again = await h[1]!.cli(['launch', 'tiny-img', '--name', 'p1', ...LAUNCH, '--target', 'h2'], { timeoutMs: 180_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(new RegExp(`image\\s+fetching tiny-img \\(sha256 ${tinySha.slice(0, 12)}\\) from h1\n`));
    expect(again.stderr).toMatch(new RegExp(`image\\s+tiny-img \\(sha256 ${tinySha.slice(0, 12)}\\) fetched from h1: ${mine!.fileSize} bytes in .* verified, resumed at ${kept[0]} bytes\n`));
    expect(again.stdout).toContain('p1 is booting.');
    expect(qemuPidsUnder(h[1]!.home)).toHaveLength(1);
    expect((await list(h[0]!)).map((i) => [i.name, i.host, i.state])).toEqual([['p1', 'h2', 'running']]);
    // h2 holds it now, with the same digest, and nothing half-done is left.
    expect((await imagesOn(h[1]!)).map((i) => [i.name, i.sha256, i.fileSize, i.hosts])).toEqual([['tiny-img', tinySha, mine!.fileSize, ['h1', 'h2']]]);
    expect(await ok(h[0]!, ['image', 'ls'])).toMatch(new RegExp(`^NAME\\s+FORMAT\\s+VIRTUAL\\s+SIZE\\s+SHA256\\s+HOSTS\\s+SOURCE\\ntiny-img\\s+qcow2\\s+.*${tinySha.slice(0, 12)}\\s+h1,h2\\s+`));
    expect(partials(h[1]!).size).toBe(0);
    expect(scratch(h[1]!)).toEqual([]);
  }, 300_000);

  it("the cluster API serves an image's bytes by digest only, with a client certificate, and honours Range", async () => {
    const tls = join(h[1]!.home, 'cluster', 'tls');
    const url = (path: string) => `https://${h[0]!.address}:7443${path}`;
    /** curl inside h2's namespace: [status, body]. */
    const curl = (path: string, ...args: string[]): [number, Buffer] => {
      const out = execFileSync('ip', ['netns', 'exec', h[1]!.netns, 'curl', '-sS', '--path-as-is', '--cacert', join(tls, 'ca.crt'), '-o', '-', '-w', '\n%{http_code}', ...args, url(path)], { maxBuffer: 64 * MIB });
      const cut = out.lastIndexOf(0x0a);
      return [Number(out.subarray(cut + 1).toString()), out.subarray(0, cut)];
    };
    const withCert = ['--cert', join(tls, 'host.crt'), '--key', join(tls, 'host.key')];
    const file = readFileSync(join(h[0]!.home, 'images', `${tinySha}.qcow2`));

    const [anonymous, refusal] = curl(`/v1/images/${tinySha}`);
    expect(anonymous).toBe(401);
    expect(JSON.parse(refusal.toString())).toMatchObject({ code: 'UNAUTHORIZED' });
    const [part, bytes] = curl(`/v1/images/${tinySha}`, ...withCert, '-r', '65536-65635');
    expect(part).toBe(206);
    expect(bytes.equals(file.subarray(65536, 65636))).toBe(true);
    const [whole, all] = curl(`/v1/images/${tinySha}`, ...withCert);
    expect(whole).toBe(200);
    expect(createHash('sha256').update(all).digest('hex')).toBe(tinySha);
    expect(curl(`/v1/images/${tinySha}`, ...withCert, '-r', `${file.length}-`)[0]).toBe(416);
    const [unknown, why] = curl(`/v1/images/${'c'.repeat(64)}`, ...withCert);
    expect(unknown).toBe(404);
    expect(JSON.parse(why.toString())).toMatchObject({ code: 'NOT_FOUND', field: 'sha256' });
    for (const path of ['/v1/images/../../../etc/passwd', '/v1/images/..%2f..%2fvirtnode.db', '/v1/images/', `/v1/images/${tinySha}.qcow2`, '/v1/images/not-a-digest']) {
      expect([path, curl(path, ...withCert)[0]]).toEqual([path, path === '/v1/images/not-a-digest' ? 400 : 404]);
    }
  }, 60_000);

  it('a launch from another host carries the digest; a host that got the image serves it in turn (h1 no longer has it)', async () => {
    await ok(h[0]!, ['image', 'rm', 'tiny-img']);
    expect(await imagesOn(h[0]!)).toEqual([]);
    const r = await h[0]!.cli(['launch', 'tiny-img', '--name', 'p2', ...LAUNCH, '--target', 'h3'], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('p2 is booting.');
    expect(r.stdout).toContain('  host:        h3\n');
    // The launch was forwarded to h3; h1's operation shows h3's fetch as it goes.
    expect(r.stderr).toMatch(new RegExp(`image\\s+fetching tiny-img \\(sha256 ${tinySha.slice(0, 12)}\\) from h2 \\(on h3\\)\n`));
    expect(r.stderr).toMatch(/image\s+tiny-img \(sha256 [0-9a-f]{12}\) fetched from h2: \d+ bytes in [\d.]+ s .*, verified \(on h3\)\n/);
    expect(qemuPidsUnder(h[2]!.home)).toHaveLength(1);
    // It came from h2, the only online host holding it.
    expect((await imagesOn(h[2]!)).map((i) => [i.name, i.sha256, i.source, i.hosts])).toEqual([['tiny-img', tinySha, `https://${h[1]!.address}:7443/v1/images/${tinySha}`, ['h2', 'h3']]]);
    for (const name of ['p1', 'p2']) await ok(h[0]!, ['delete', '--force', name]);
  }, 180_000);

  it('a damaged copy on the serving host is refused with a digest mismatch and leaves nothing on the fetching host', async () => {
    const file = randomImage(work, 'rand', 4);
    await ok(h[0]!, ['image', 'import', file, '--name', 'rand']);
    const [stored] = (await imagesOn(h[0]!)).filter((i) => i.name === 'rand');
    // A byte in the middle of h1's stored file changes (a bad disk, a bad hand).
    const path = join(h[0]!.home, 'images', `${stored!.sha256}.qcow2`);
    const fd = await open(path, 'r+');
    try {
      const b = Buffer.alloc(1);
      await fd.read(b, 0, 1, Math.floor(stored!.fileSize / 2));
      b[0] = b[0]! ^ 0xff;
      await fd.write(b, 0, 1, Math.floor(stored!.fileSize / 2));
    } finally {
      await fd.close();
    }
    const before = await list(h[0]!);
    const r = await h[0]!.cli(['launch', 'rand', '--name', 'bad1', ...LAUNCH, '--target', 'h2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^error: image: the copy of rand on h1 is damaged: its bytes have sha256 [0-9a-f]{64}, not ${stored!.sha256}; nothing was kept on h2$`, 'm'));
    expect(r.stderr).toContain('hint: remove the image on h1 and import it there again');
    expect((await imagesOn(h[1]!)).map((i) => i.name)).toEqual(['tiny-img']);
    expect(partials(h[1]!).size).toBe(0);
    expect(scratch(h[1]!)).toEqual([]);
    expect(existsSync(join(h[1]!.home, 'images', `${stored!.sha256}.qcow2`))).toBe(false);
    expect(await list(h[0]!)).toEqual(before);
    expect(qemuPidsUnder(h[1]!.home)).toEqual([]);
    await ok(h[0]!, ['image', 'rm', 'rand']);
  }, 180_000);

  it('a digest nobody holds, and an image of the same name with other content, are refused before anything starts', async () => {
    const nobody = await requestOn(h[0]!, 'POST', '/instances/launch', { image: 'ghost', imageSha256: 'a'.repeat(64), name: 'g1', memory: '128M', wait: false, target: 'h2' });
    expect(nobody.status).toBe(404);
    expect(nobody.body.error).toMatchObject({ code: 'NOT_FOUND', field: 'image' });
    expect(nobody.body.error?.message).toBe(`image: h2 has no image ghost, and no online host of the cluster holds sha256 ${'a'.repeat(64)}`);
    const other = await requestOn(h[0]!, 'POST', '/instances/launch', { image: 'tiny-img', imageSha256: 'b'.repeat(64), name: 'g1', memory: '128M', wait: false, target: 'h2' });
    expect(other.status).toBe(409);
    expect(other.body.error).toMatchObject({ code: 'CONFLICT', field: 'imageSha256' });
    expect(other.body.error?.message).toBe(`imageSha256: image tiny-img on h2 has sha256 ${tinySha}, not ${'b'.repeat(64)}`);
    expect(h.flatMap((x) => qemuPidsUnder(x.home))).toEqual([]);
    expect(await list(h[2]!)).toEqual([]);
  }, 60_000);

  it('measures the transfer of a 256 MiB image between two hosts', async () => {
    const file = randomImage(work, 'big', 256);
    await ok(h[0]!, ['image', 'import', file, '--name', 'big']);
    const started = Date.now();
    const r = await h[2]!.cli(['launch', 'big', '--name', 'm1', ...LAUNCH, '--target', 'h3'], { timeoutMs: 240_000 });
    expect(r.code, r.stderr).toBe(0);
    const line = /fetched from h1: .*/.exec(r.stderr)?.[0];
    console.log(`256 MiB image h1 -> h3 over the cluster API: ${line} (launch took ${Date.now() - started} ms)`);
    expect(line).toMatch(/^fetched from h1: \d+ bytes in [\d.]+ s \(transfer [\d.]+ MiB\/s\), verified$/);
    expect(Number(/(\d+) bytes/.exec(line!)![1])).toBeGreaterThan(256 * MIB);
    await ok(h[2]!, ['delete', '--force', 'm1']);
    for (const x of [h[0]!, h[2]!]) await ok(x, ['image', 'rm', 'big']);
  }, 300_000);
});
