import { existsSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/images/store/index.ts';
import type { DownloadProgress } from '../../src/images/pull/progress.ts';
import { isVirtnodeError } from '../../src/lib/errors.ts';
import { statePaths } from '../../src/lib/paths.ts';
import { openDb } from '../../src/store/db.ts';
import type { Db } from '../../src/store/db.ts';
import { TestHttpServer, createQcow2, createTestImages, sha256 } from '../helpers/http-server.ts';
import type { TestImages } from '../helpers/http-server.ts';

async function failure(p: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e;
  }
  throw new Error('expected a failure');
}

describe('ImageStore (the service launch and the API use)', () => {
  let root = '';
  let db: Db;
  let store: ImageStore;
  let images: TestImages;
  let qcow2Sha = '';
  let server: TestHttpServer;
  let other: Buffer;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'virtnode-image-api-'));
    images = await createTestImages(await mkdtemp(join(root, 'fixtures-')));
    qcow2Sha = sha256(readFileSync(images.qcow2));
    const paths = statePaths(join(root, 'state'));
    db = openDb(paths.db);
    store = new ImageStore(paths, db);
    server = await TestHttpServer.start();
    other = await createQcow2(join(root, 'other.qcow2'), 0x33);
    server.serve('/other.qcow2', other);
  });

  afterAll(async () => {
    await server?.close();
    db?.close();
    if (root !== '') await rm(root, { recursive: true, force: true });
  });

  it('two imports of the same content at once both succeed and share one file', async () => {
    const [a, b] = await Promise.all([store.import(images.qcow2, { name: 'one' }), store.import(images.qcow2Xz, { name: 'two' })]);
    expect(a.image.sha256).toBe(qcow2Sha);
    expect(b.image.sha256).toBe(qcow2Sha);
    expect([a.outcome, b.outcome].sort()).toEqual(['deduplicated', 'stored']);
    expect(readdirSync(store.dir).filter((f) => !f.startsWith('.'))).toEqual([`${qcow2Sha}.qcow2`]);
  });

  it('resolve() gives name, sha256, path and format of a stored image, by name or by its stored path', async () => {
    const byName = store.resolve('one');
    expect(byName).toEqual({ name: 'one', sha256: qcow2Sha, format: 'qcow2', path: join(store.dir, `${qcow2Sha}.qcow2`) });
    expect(store.resolve(byName.path)).toEqual({ ...byName, name: 'one' });
  });

  it('resolve() refuses unknown names and files outside the store, with hints', async () => {
    const unknown = await failure(() => store.resolve('ghost'));
    expect(isVirtnodeError(unknown, 'NOT_FOUND') && unknown.hint).toMatch(/virtnode image ls/);
    const file = await failure(() => store.resolve(images.qcow2));
    expect(isVirtnodeError(file, 'INVALID') && file.message).toMatch(/is a file, not a stored image/);
    expect(isVirtnodeError(file) && file.hint).toBe(`import it first: virtnode image import ${images.qcow2} --name NAME`);
    const missing = await failure(() => store.resolve('./nowhere.qcow2'));
    expect(isVirtnodeError(missing, 'INVALID') && missing.message).toMatch(/does not exist/);
  });

  it('import() reports the progress of copying, or of unpacking an .xz, ending with one done report', async () => {
    const size = readFileSync(images.qcow2).length;
    for (const [file, name] of [
      [images.qcow2, 'progress-plain'],
      [images.qcow2Xz, 'progress-xz'],
    ] as const) {
      const reports: DownloadProgress[] = [];
      await store.import(file, { name, onProgress: (p) => reports.push({ ...p }) });
      expect(reports.filter((r) => r.done)).toHaveLength(1);
      expect(reports.at(-1)).toMatchObject({ done: true, received: size, total: size });
      const received = reports.map((r) => r.received);
      expect(received).toEqual([...received].sort((a, b) => a - b));
      store.remove(name, { usersOf: () => [] });
    }
  });

  it('an import cancelled through its signal records nothing and leaves no scratch files', async () => {
    const controller = new AbortController();
    controller.abort();
    const e = await failure(store.import(images.qcow2, { name: 'cancelled', signal: controller.signal }));
    expect(isVirtnodeError(e, 'TIMEOUT') && e.message).toBe(`import of ${images.qcow2} was interrupted; nothing was stored`);
    expect(store.list().map((i) => i.name)).toEqual(['one', 'two']);
    expect(readdirSync(join(store.dir, '.tmp'))).toEqual([]);
  });

  it('pull() reports progress over the whole transfer, ending with done at the full size', async () => {
    const reports: DownloadProgress[] = [];
    const otherSha = sha256(other);
    const result = await store.pull(server.url('/other.qcow2'), { name: 'pulled', sha256: otherSha, onProgress: (p) => reports.push({ ...p }) });
    expect(result).toMatchObject({ outcome: 'stored', verifiedBy: 'sha256', downloadSha256: otherSha, resumedFrom: 0, bytes: other.length });
    expect(reports[0]).toMatchObject({ received: 0, total: other.length, done: false });
    expect(reports.at(-1)).toMatchObject({ received: other.length, total: other.length, done: true });
    const received = reports.map((r) => r.received);
    expect(received).toEqual([...received].sort((a, b) => a - b));

    // The same bytes again (by their verified hash) are named without a second download.
    const requests = server.requests.length;
    const again = await store.pull(server.url('/other.qcow2?mirror=2'), { name: 'pulled-again', sha256: otherSha });
    expect(again).toMatchObject({ outcome: 'deduplicated', sharedWith: ['pulled'], bytes: 0 });
    expect(server.requests.length).toBe(requests);
    expect(store.remove('pulled-again', { usersOf: () => [] }).fileDeleted).toBe(false);
  });

  it('a partial download that is already complete (interrupted while unpacking) is only checked, not fetched again', async () => {
    const body = await createQcow2(join(root, 'complete.qcow2'), 0x66);
    server.serve('/complete.qcow2', body);
    const url = server.url('/complete.qcow2');
    const partial = store.partialPathOf(url);
    writeFileSync(partial, body);
    writeFileSync(`${partial}.json`, JSON.stringify({ url, validator: `"${sha256(body).slice(0, 16)}"`, total: body.length }));
    const result = await store.pull(url, { name: 'complete', sha256: sha256(body) });
    expect(result).toMatchObject({ outcome: 'stored', resumedFrom: body.length, bytes: body.length });
    expect(server.requestsFor('/complete.qcow2')).toEqual([expect.objectContaining({ status: 416, range: `bytes=${body.length}-`, bytesSent: 0 })]);
    expect(existsSync(partial)).toBe(false);
    store.remove('complete', { usersOf: () => [] });
  });

  it('a server that never answers is a TIMEOUT naming the URL; one that goes silent mid-transfer is resumed', async () => {
    server.serve('/hang.qcow2', { body: Buffer.from('never sent'), hang: true });
    const hung = await failure(store.pull(server.url('/hang.qcow2'), { name: 'hung', stallTimeoutMs: 300 }));
    expect(isVirtnodeError(hung, 'TIMEOUT') && hung.message).toBe(`cannot download ${server.url('/hang.qcow2')}: no answer within 0.3 s`);

    const body = await createQcow2(join(root, 'stall.qcow2'), 0x77);
    server.serve('/stall.qcow2', { body, stallAfter: 100_000 });
    const result = await store.pull(server.url('/stall.qcow2'), { name: 'stalled', sha256: sha256(body), stallTimeoutMs: 300 });
    expect(result).toMatchObject({ outcome: 'stored', resumedFrom: 100_000 });
    expect(server.requestsFor('/stall.qcow2').map((r) => [r.status, r.range, r.bytesSent])).toEqual([
      [200, undefined, 100_000],
      [206, 'bytes=100000-', body.length - 100_000],
    ]);
    store.remove('stalled', { usersOf: () => [] });
  });

  it('partial downloads abandoned for a week are cleared, recent ones are kept for resuming', async () => {
    const old = store.partialPathOf('http://example.invalid/old.qcow2');
    const recent = store.partialPathOf('http://example.invalid/recent.qcow2');
    writeFileSync(old, 'stale bytes');
    writeFileSync(`${old}.json`, '{}');
    writeFileSync(recent, 'fresh bytes');
    const eightDaysAgo = new Date(Date.now() - 8 * 24 * 3600_000);
    utimesSync(old, eightDaysAgo, eightDaysAgo);
    await store.import(images.qcow2, { name: 'trigger' });
    expect(existsSync(old)).toBe(false);
    expect(existsSync(`${old}.json`)).toBe(false);
    expect(existsSync(recent)).toBe(true);
    rmSync(recent);
    store.remove('trigger', { usersOf: () => [] });
  });

  it('remove() asks usersOf about the image file and deletes it with the last name', async () => {
    const asked: string[] = [];
    const usersOf = (path: string) => {
      asked.push(path);
      return [];
    };
    const path = join(store.dir, `${qcow2Sha}.qcow2`);
    expect(store.remove('one', { usersOf })).toMatchObject({ fileDeleted: false, keptFor: { names: ['two'], instances: [] } });
    expect(store.remove('two', { usersOf }).fileDeleted).toBe(true);
    expect(asked).toEqual([path, path]);
    expect(existsSync(path)).toBe(false);
    expect(store.remove('pulled', { usersOf }).fileDeleted).toBe(true);
    expect(store.list()).toEqual([]);
  });
});
