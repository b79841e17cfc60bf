import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempHome, virtnode } from '../helpers/cli.ts';
import { createQcow2, sha256, TestHttpServer } from '../helpers/http-server.ts';
import { testGuest } from '../helpers/test-guest.ts';

const guest = testGuest();
const bootArgs = ['--kernel', guest.kernel, '--initrd', guest.initrd, '--cmdline', guest.cmdline];

describe('virtnode apply: images (pulled and imported) and templates (made from an instance)', { timeout: 300_000 }, () => {
  const { home, cleanup } = tempHome('virtnode-apply-img-');
  const stackFile = join(home, 'stack.yaml');
  let server: TestHttpServer | undefined;
  let pulled: Buffer;
  let localFile: string;

  const run = (args: string[]) => virtnode(home, args, { timeoutMs: 180_000 });
  const ok = async (args: string[]) => {
    const r = await run(args);
    expect(r.code, `virtnode ${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const images = async () => (JSON.parse(await ok(['image', 'ls', '--format', 'json'])) as Array<{ name: string; sha256: string }>).map((i) => [i.name, i.sha256]);
  const templates = async () => (JSON.parse(await ok(['template', 'ls', '--format', 'json'])) as Array<{ name: string }>).map((t) => t.name);
  const stack = (sha: string) => `kind: image
name: pulled
url: ${server!.url('/pulled.qcow2')}
sha256: ${sha}
---
kind: image
name: local
file: ${localFile}
---
kind: template
name: golden
instance: tsrc
`;

  beforeAll(async () => {
    const files = join(home, 'files');
    mkdirSync(files);
    pulled = await createQcow2(join(files, 'pulled.qcow2'), 0x11);
    localFile = join(files, 'local.qcow2');
    await createQcow2(localFile, 0x22);
    server = await TestHttpServer.start();
    server.serve('/pulled.qcow2', pulled);
  });

  afterAll(async () => {
    await run(['delete', '--force', 'tsrc']);
    writeFileSync(stackFile, '# nothing\n');
    await run(['apply', '-f', stackFile, '--stack', 'imgs', '--prune']);
    for (const name of ['pulled', 'local']) await run(['image', 'rm', name]);
    await run(['template', 'rm', 'golden']);
    await server?.close();
    cleanup();
  });

  it('pulls, imports and makes a template once; a second apply changes nothing', async () => {
    await ok(['create', 'tsrc', '--disk-size', '64M', ...bootArgs]);
    writeFileSync(stackFile, stack(sha256(pulled)));
    const plan = await ok(['plan', '-f', stackFile, '--stack', 'imgs']);
    expect(plan).toContain('+ image pulled (create)');
    expect(plan).toContain('+ image local (create)');
    expect(plan).toContain('+ template golden (create)');
    expect(await images()).toEqual([]);

    await ok(['apply', '-f', stackFile, '--stack', 'imgs']);
    expect((await images()).sort()).toEqual([['local', expect.any(String)], ['pulled', sha256(pulled)]].sort());
    expect(await templates()).toEqual(['golden']);
    // The template consumed its instance.
    expect((JSON.parse(await ok(['list', '--format', 'json'])) as unknown[]).length).toBe(0);
    expect(await ok(['apply', '-f', stackFile, '--stack', 'imgs'])).toContain('No changes');
  });

  it('another digest under the same name is a replace, refused without --allow-replace; with it the old image goes, the pull of a wrong digest fails, and the next apply brings the right one back', async () => {
    const other = 'ab'.repeat(32);
    writeFileSync(stackFile, stack(other));
    const refused = await run(['apply', '-f', stackFile, '--stack', 'imgs']);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(/replacing image pulled .*--allow-replace/);
    const replaced = await run(['apply', '-f', stackFile, '--stack', 'imgs', '--allow-replace']);
    expect(replaced.code).not.toBe(0);
    expect(replaced.stderr).toMatch(/apply stopped at image pulled: .*sha256/i);
    // The old image was removed before the pull failed: the next apply with the right digest brings it back.
    writeFileSync(stackFile, stack(sha256(pulled)));
    await ok(['apply', '-f', stackFile, '--stack', 'imgs']);
    expect((await images()).find(([n]) => n === 'pulled')).toEqual(['pulled', sha256(pulled)]);
  });

  it('--prune removes the images and the template this stack made', async () => {
    writeFileSync(stackFile, '# nothing\n');
    const pruned = await ok(['apply', '-f', stackFile, '--stack', 'imgs', '--prune']);
    expect(pruned).toContain('- template golden (delete)');
    expect(await images()).toEqual([]);
    expect(await templates()).toEqual([]);
  });
});
