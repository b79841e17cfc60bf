import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/exec/run.ts';
import { VIRTNODE_BIN, tempHome, virtnode, virtnodeOnTerminal } from '../helpers/cli.ts';
import type { CliResult } from '../helpers/cli.ts';
import { TestHttpServer, createQcow2, createTestImages, sha256, sha256sums } from '../helpers/http-server.ts';

interface ImageJson {
  name: string;
  format: string;
  sha256: string;
  source: string;
  sourceSha256: string;
  verifiedBy: string | null;
}

describe('virtnode image pull', () => {
  const { home, cleanup } = tempHome('virtnode-image-pull-');
  const imagesDir = join(home, 'images');
  const partialDir = join(imagesDir, '.partial');
  let fixtures = '';
  let server: TestHttpServer;
  let body: Buffer;
  let bodySha = '';
  let xzBody: Buffer;
  let corrupt: Buffer;
  let published: Buffer;
  let tty: Buffer;
  /** Distinct content per resume test, so no pull can reuse bytes another one already stored. */
  const variants: Record<'cut' | 'ctrlC' | 'changed' | 'noRanges', { body: Buffer; sha: string }> = {} as never;

  const list = async (): Promise<ImageJson[]> => {
    const r = await virtnode(home, ['image', 'ls', '--format', 'json']);
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as ImageJson[];
  };
  const storedFiles = () => (existsSync(imagesDir) ? readdirSync(imagesDir).filter((f) => !f.startsWith('.')).sort() : []);
  const partials = () => (existsSync(partialDir) ? readdirSync(partialDir) : []);
  const partialImage = () => partials().find((f) => /^[0-9a-f]{32}$/.test(f));

  /** The CLI as a child we can interrupt, like a user pressing Ctrl-C once the download is under way. */
  const pullInterrupted = (args: string[], whileRunning?: () => Promise<void>): Promise<CliResult & { partialBytes: number }> =>
    new Promise((resolve, reject) => {
      const child = spawn(VIRTNODE_BIN, ['image', 'pull', ...args], { env: { ...process.env, VIRTNODE_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const poll = setInterval(() => {
        const name = partialImage();
        if (name !== undefined && statSync(join(partialDir, name)).size > 64 * 1024) {
          clearInterval(poll);
          void (whileRunning ?? (async () => {}))().finally(() => child.kill('SIGINT'));
        }
      }, 20);
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearInterval(poll);
        clearTimeout(timer);
        const name = partialImage();
        resolve({ code, signal, stdout, stderr, partialBytes: name === undefined ? 0 : statSync(join(partialDir, name)).size });
      });
    });

  beforeAll(async () => {
    fixtures = await mkdtemp(join(tmpdir(), 'virtnode-pull-fixtures-'));
    const images = await createTestImages(fixtures);
    body = readFileSync(images.qcow2);
    bodySha = sha256(body);
    xzBody = readFileSync(images.qcow2Xz);
    server = await TestHttpServer.start();
    server.serve('/img/test.qcow2', body);
    server.serve('/img/again.qcow2', body);
    for (const [i, key] of (['cut', 'ctrlC', 'changed', 'noRanges'] as const).entries()) {
      const variant = await createQcow2(join(fixtures, `${key}.qcow2`), 0x10 + i);
      variants[key] = { body: variant, sha: sha256(variant) };
    }
    server.serve('/img/cut.qcow2', variants.cut.body);
    server.serve('/img/ctrl-c.qcow2', variants.ctrlC.body);
    server.serve('/img/changed.qcow2', variants.changed.body);
    server.serve('/img/busy.qcow2', body);
    tty = await createQcow2(join(fixtures, 'tty.qcow2'), 0x44);
    server.serve('/img/tty.qcow2', tty);
    await run(['qemu-img', 'create', '-q', '-f', 'vmdk', join(fixtures, 'disk.vmdk'), '16M'], { timeoutMs: 30_000 });
    server.serve('/img/disk.vmdk', readFileSync(join(fixtures, 'disk.vmdk')));
    server.serve('/img/portal.qcow2', { body: Buffer.from('<html><body>Please log in</body></html>'), contentType: 'text/html; charset=utf-8' });
    server.serve('/img/no-ranges.qcow2', { body: variants.noRanges.body, ranges: false });
    server.serve('/img/endless.qcow2', { body: Buffer.alloc(64 * 1024 * 1024, 7), lengthUnknown: true });
    server.serve('/img/unverified.qcow2', body);
    published = Buffer.from('the image as its publisher released it');
    corrupt = Buffer.concat([body.subarray(0, body.length - 1), Buffer.from([body[body.length - 1]! ^ 0xff])]);
    server.serve('/img/corrupt.qcow2', corrupt);
    server.serve('/img/cloud.qcow2.xz', xzBody);
    server.serve('/img/SHA256SUMS', sha256sums({ 'cloud.qcow2.xz': xzBody, 'test.qcow2': body, 'corrupt.qcow2': published }));
  });

  afterAll(async () => {
    await server?.close();
    cleanup();
    if (fixtures !== '') await rm(fixtures, { recursive: true, force: true });
  });

  it('downloads with --sha256, showing progress lines (not a terminal) and storing a verified image', async () => {
    server.throttle(2 * 1024 * 1024);
    const r = await virtnode(home, ['image', 'pull', server.url('/img/test.qcow2'), '--sha256', bodySha.toUpperCase()]);
    server.throttle(undefined);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Pulled image test \\(qcow2, 64 MiB virtual, .* sha256 ${bodySha}\\)\\n$`));
    const lines = r.stderr.trimEnd().split('\n');
    // One line per 10% step, each with bytes of the whole and the rate; the last at 100%.
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const line of lines) expect(line).toMatch(/^Downloading\s+\d{1,3}%\s+[\d.]+ (B|KiB) \/ 576 KiB\s+[\d.]+ (B|KiB|MiB)\/s(\s+ETA \d+:\d\d|\s+done)?$/);
    expect(lines.filter((l) => l.includes('100%'))).toEqual([expect.stringMatching(/^Downloading 100%  576 KiB \/ 576 KiB  [\d.]+ (KiB|MiB)\/s  done$/)]);
    expect(lines.at(-1)).toContain('100%');
    const percents = lines.map((l) => Number(/(\d+)%/.exec(l)![1]));
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
    expect(r.stderr).not.toMatch(/warning/);
    expect(await list()).toEqual([expect.objectContaining({ name: 'test', format: 'qcow2', sha256: bodySha, source: server.url('/img/test.qcow2'), verifiedBy: 'sha256' })]);
    expect(storedFiles()).toEqual([`${bodySha}.qcow2`]);
    expect(partials()).toEqual([]);
  });

  it('on a terminal the progress is one line redrawn in place', async () => {
    server.throttle(1024 * 1024);
    const r = await virtnodeOnTerminal(home, ['image', 'pull', server.url('/img/tty.qcow2'), '--sha256', sha256(tty)]);
    server.throttle(undefined);
    expect(r.code).toBe(0);
    const progress = r.out.slice(0, r.out.indexOf('Pulled image tty'));
    const draws = progress.split('\r\x1b[K').filter((d) => d !== '');
    expect(draws.length).toBeGreaterThanOrEqual(2);
    for (const draw of draws.slice(0, -1)) expect(draw).toMatch(/^Downloading +\d+% {2}\[[# ]{24}\] .* ([\d.]+ (B|KiB|MiB)\/s)( {2}ETA \d+:\d\d)?$/);
    expect(draws.at(-1)).toMatch(/^Downloading 100% {2}\[#{24}\] {2}576 KiB \/ 576 KiB {2}.* {2}done\r?\n$/);
    expect(r.out).toMatch(/Pulled image tty /);
  });

  it('verifies with --checksums (SHA256SUMS) and decompresses an .xz download', async () => {
    const r = await virtnode(home, ['image', 'pull', server.url('/img/cloud.qcow2.xz'), '--checksums', server.url('/img/SHA256SUMS')]);
    expect(r.stderr).not.toMatch(/warning|error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Pulled image cloud .*same content as image test, stored once/);
    const image = (await list()).find((i) => i.name === 'cloud');
    expect(image).toMatchObject({ format: 'qcow2', sha256: bodySha, sourceSha256: sha256(xzBody), verifiedBy: 'checksums' });
    expect(storedFiles()).toEqual([`${bodySha}.qcow2`, `${sha256(tty)}.qcow2`].sort());
  });

  it('without a checksum warns that the download is unverified and records the sha256 it computed', async () => {
    const r = await virtnode(home, ['image', 'pull', server.url('/img/unverified.qcow2'), '--name', 'plain']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`warning: the download is unverified (no --sha256 or --checksums); its sha256 is ${bodySha}\n`);
    expect((await list()).find((i) => i.name === 'plain')).toMatchObject({ sha256: bodySha, verifiedBy: null });
  });

  it('a checksum mismatch names both hashes and leaves nothing behind', async () => {
    const before = { list: await list(), files: storedFiles() };
    const r = await virtnode(home, ['image', 'pull', server.url('/img/corrupt.qcow2'), '--checksums', server.url('/img/SHA256SUMS')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`\\nerror: --checksums: the download of ${server.url('/img/corrupt.qcow2')} does not match its checksum: expected sha256 ${sha256(published)}, got ${sha256(corrupt)}\\nhint: .*the download was deleted`));
    expect(r.stderr).not.toContain(`got ${bodySha}`);
    expect(r.stdout).toBe('');
    expect({ list: await list(), files: storedFiles() }).toEqual(before);
    expect(partials()).toEqual([]);
    expect(readdirSync(join(imagesDir, '.tmp'))).toEqual([]);
  });

  it('a wrong --sha256 is refused the same way', async () => {
    const wrong = 'ab'.repeat(32);
    const r = await virtnode(home, ['image', 'pull', server.url('/img/again.qcow2'), '--sha256', wrong]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`\\nerror: --sha256: .* expected sha256 ${wrong}, got ${bodySha}\\n`));
    expect((await list()).map((i) => i.name)).not.toContain('again');
    expect(partials()).toEqual([]);
  });

  it('HTTP and connection errors are one clear line naming the URL', async () => {
    const missing = await virtnode(home, ['image', 'pull', server.url('/img/missing.qcow2')]);
    expect(missing.stderr).toBe(`error: cannot download ${server.url('/img/missing.qcow2')}: 404 Not Found\nhint: check the URL\n`);
    expect(missing.code).toBe(3);

    const closed = await TestHttpServer.start();
    const refusedUrl = closed.url('/x.qcow2');
    await closed.close();
    const refused = await virtnode(home, ['image', 'pull', refusedUrl]);
    expect(refused.stderr).toBe(`error: cannot download ${refusedUrl}: connection refused\n`);
    expect(refused.code).toBe(9);

    const sums = await virtnode(home, ['image', 'pull', server.url('/img/again.qcow2'), '--checksums', server.url('/img/nosums')]);
    expect(sums.stderr).toMatch(/^error: cannot download .*\/img\/nosums: 404 Not Found\n/);
    expect(sums.code).toBe(3);

    const unlisted = await virtnode(home, ['image', 'pull', server.url('/img/again.qcow2'), '--checksums', server.url('/img/SHA256SUMS')]);
    expect(unlisted.stderr).toMatch(/^error: --checksums: .*SHA256SUMS lists no sha256 for "again.qcow2"\nhint: it lists: cloud.qcow2.xz, test.qcow2, corrupt.qcow2\n$/);
    expect(unlisted.code).toBe(2);
    expect((await list()).map((i) => i.name)).not.toContain('again');
  });

  it('bad arguments are refused before anything is downloaded', async () => {
    const count = server.requests.length;
    const cases: Array<[string[], RegExp]> = [
      [['ftp://example.org/a.qcow2'], /^error: URL: "ftp:\/\/example.org\/a.qcow2" is not an http or https URL/],
      [['not a url'], /^error: URL: "not a url" is not a URL/],
      [[server.url('/img/again.qcow2'), '--sha256', 'xyz'], /^error: --sha256: "xyz" is not a sha256/],
      [[server.url('/img/again.qcow2'), '--name', 'Bad_Name'], /^error: --name: "Bad_Name" is not a valid name/],
      [[server.url('/img/again.qcow2'), '--sha256', bodySha, '--checksums', server.url('/img/SHA256SUMS')], /^error: --checksums: give either --sha256 or --checksums, not both/],
      [[server.url('/img/again.qcow2'), '--name', 'test'], /^error: image test already exists/],
    ];
    for (const [args, message] of cases) {
      const r = await virtnode(home, ['image', 'pull', ...args]);
      expect(r.stderr).toMatch(message);
      expect([2, 4]).toContain(r.code);
    }
    expect(server.requests.length).toBe(count);
  });

  it('a connection cut mid-transfer is resumed with a Range request that fetches only the rest', async () => {
    server.cutNextAfter(200_000);
    const r = await virtnode(home, ['image', 'pull', server.url('/img/cut.qcow2'), '--sha256', variants.cut.sha]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const [first, second, ...more] = server.requestsFor('/img/cut.qcow2');
    expect(more).toEqual([]);
    expect(first).toMatchObject({ status: 200, range: undefined, bytesSent: 200_000 });
    expect(second).toMatchObject({ status: 206, range: 'bytes=200000-', ifRange: expect.stringMatching(/^"/), bytesSent: variants.cut.body.length - 200_000 });
    expect(server.bytesServed('/img/cut.qcow2')).toBe(variants.cut.body.length);
    expect(r.stderr).toMatch(/resumed at 195\.3 KiB/);
    expect((await list()).find((i) => i.name === 'cut')).toMatchObject({ sha256: variants.cut.sha, verifiedBy: 'sha256' });
  });

  it('Ctrl-C keeps the partial download but records nothing; the next pull downloads only the rest', async () => {
    server.throttle(256 * 1024);
    const interrupted = await pullInterrupted([server.url('/img/ctrl-c.qcow2'), '--sha256', variants.ctrlC.sha]);
    server.throttle(undefined);
    expect(interrupted.stderr).toMatch(/error: download of .*\/img\/ctrl-c.qcow2 was interrupted after .* of 576 KiB\nhint: run the same command again to resume it\n$/);
    expect(interrupted.code).toBe(7);
    expect(interrupted.partialBytes).toBeGreaterThan(64 * 1024);
    expect(interrupted.partialBytes).toBeLessThan(variants.ctrlC.body.length);
    expect((await list()).map((i) => i.name)).not.toContain('ctrl-c');
    expect(storedFiles()).not.toContain(`${variants.ctrlC.sha}.qcow2`);

    const again = await virtnode(home, ['image', 'pull', server.url('/img/ctrl-c.qcow2'), '--sha256', variants.ctrlC.sha]);
    expect(again.code).toBe(0);
    const last = server.requestsFor('/img/ctrl-c.qcow2').at(-1)!;
    expect(last).toMatchObject({ status: 206, range: `bytes=${interrupted.partialBytes}-`, bytesSent: variants.ctrlC.body.length - interrupted.partialBytes });
    expect((await list()).find((i) => i.name === 'ctrl-c')).toMatchObject({ sha256: variants.ctrlC.sha });
    expect(partials()).toEqual([]);
  });

  it('restarts from zero when the file changed on the server since the partial download (If-Range)', async () => {
    server.throttle(256 * 1024);
    const interrupted = await pullInterrupted([server.url('/img/changed.qcow2')]);
    server.throttle(undefined);
    expect(interrupted.code).toBe(7);
    expect(interrupted.partialBytes).toBeGreaterThan(0);
    server.update('/img/changed.qcow2', { etag: '"replaced"' });
    const again = await virtnode(home, ['image', 'pull', server.url('/img/changed.qcow2'), '--sha256', variants.changed.sha]);
    expect(again.code).toBe(0);
    const last = server.requestsFor('/img/changed.qcow2').at(-1)!;
    expect(last).toMatchObject({ status: 200, range: `bytes=${interrupted.partialBytes}-`, bytesSent: variants.changed.body.length });
    expect(again.stderr).not.toMatch(/resumed/);
  });

  it('a second pull of the same URL while one runs is refused (BUSY), not interleaved', async () => {
    server.throttle(128 * 1024);
    let second: CliResult | undefined;
    const first = await pullInterrupted([server.url('/img/busy.qcow2')], async () => {
      second = await virtnode(home, ['image', 'pull', server.url('/img/busy.qcow2'), '--name', 'busy-two']);
    });
    server.throttle(undefined);
    expect(second!.stderr).toMatch(/^error: another pull of .*\/img\/busy.qcow2 is under way \(pid \d+\)\nhint: wait for it to finish/);
    expect(second!.code).toBe(6);
    expect(first.code).toBe(7);
    expect(server.requestsFor('/img/busy.qcow2')).toHaveLength(1);
    expect(partials().filter((f) => f.endsWith('.lock'))).toEqual([]);
  });

  it('a web page instead of an image (a captive portal, a wrong link) is refused', async () => {
    const r = await virtnode(home, ['image', 'pull', server.url('/img/portal.qcow2')]);
    expect(r.stderr).toMatch(/^error: URL: .*\/img\/portal.qcow2 returned a web page \(text\/html; charset=utf-8\), not an image\n/);
    expect(r.code).toBe(2);
    expect((await list()).map((i) => i.name)).not.toContain('portal');
  });

  it('a download in a format other than qcow2 or raw is refused after the transfer and nothing is kept', async () => {
    const before = { list: await list(), files: storedFiles(), partials: partials() };
    const r = await virtnode(home, ['image', 'pull', server.url('/img/disk.vmdk')]);
    expect(r.stderr).toMatch(/\nerror: URL: .*\/img\/disk.vmdk is a vmdk image; only qcow2 and raw images can be stored\n/);
    expect(r.code).toBe(2);
    expect({ list: await list(), files: storedFiles(), partials: partials() }).toEqual(before);
    expect(readdirSync(join(imagesDir, '.tmp'))).toEqual([]);
  });

  it('a download is capped while it streams: a server that declares no size cannot fill the disk', async () => {
    const before = { list: await list(), files: storedFiles(), partials: partials() };
    const r = await virtnode(home, ['image', 'pull', server.url('/img/endless.qcow2')], { env: { VIRTNODE_MAX_IMAGE_BYTES: String(1024 * 1024) } });
    expect(r.stderr).toMatch(/error: URL: cannot download .*\/img\/endless.qcow2: it is larger than the largest image virtnode takes \(1 MiB, VIRTNODE_MAX_IMAGE_BYTES\)\n/);
    expect(r.code).toBe(2);
    expect(server.requestsFor('/img/endless.qcow2').at(-1)!.bytesSent).toBeLessThan(64 * 1024 * 1024); // it stopped reading
    expect({ list: await list(), files: storedFiles(), partials: partials() }).toEqual(before);
  });

  it('a server without byte ranges: a cut transfer starts again from zero and still completes', async () => {
    server.cutNextAfter(100_000);
    const r = await virtnode(home, ['image', 'pull', server.url('/img/no-ranges.qcow2'), '--sha256', variants.noRanges.sha]);
    expect(r.code).toBe(0);
    const requests = server.requestsFor('/img/no-ranges.qcow2');
    expect(requests.map((q) => [q.status, q.range, q.bytesSent])).toEqual([
      [200, undefined, 100_000],
      [200, undefined, variants.noRanges.body.length],
    ]);
  });

  it('bytes already stored under a verified sha256 are named again without downloading', async () => {
    const requests = server.requests.length;
    const r = await virtnode(home, ['image', 'pull', server.url('/img/again.qcow2'), '--sha256', bodySha]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Pulled image again .*; same content as image cloud, plain, test, stored once\n$/);
    expect(server.requests.length).toBe(requests);
    expect((await list()).find((i) => i.name === 'again')).toMatchObject({ sha256: bodySha, source: server.url('/img/again.qcow2'), verifiedBy: 'sha256' });
  });
});
