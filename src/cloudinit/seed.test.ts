import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../exec/run.ts';
import { buildSeed, type SeedFiles } from './seed.ts';

const FILES: SeedFiles = {
  'meta-data': 'instance-id: iid-seed-test\nlocal-hostname: seed-test\n',
  'user-data': '#cloud-config\npassword: s3cret\n',
  'network-config': 'version: 2\nethernets: {}\n',
};

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'virtnode-seed-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

describe('buildSeed', () => {
  it('writes an ISO9660 seed with volume id cidata, Joliet and Rock Ridge, mode 0600', async () => {
    const out = join(dir, 'seed.iso');
    await buildSeed(out, FILES, { format: 'iso' });
    expect(await mode(out)).toBe(0o600);
    const pvd = await run(['xorriso', '-indev', out, '-pvd_info'], { timeoutMs: 10_000 });
    expect(pvd.stdout + pvd.stderr).toMatch(/Volume Id\s*:\s*cidata/);
    const ls = await run(['xorriso', '-indev', out, '-ls', '/'], { timeoutMs: 10_000 });
    const listing = ls.stdout;
    expect(listing).toContain("'meta-data'");
    expect(listing).toContain("'user-data'");
    expect(listing).toContain("'network-config'");
    expect(listing).not.toContain("'vendor-data'");
    const extracted = join(dir, 'iso-user-data');
    await run(['xorriso', '-osirrox', 'on', '-indev', out, '-extract', '/user-data', extracted], { timeoutMs: 10_000 });
    expect(await readFile(extracted, 'utf8')).toBe(FILES['user-data']);
    const info = await run(['isoinfo', '-d', '-i', out], { timeoutMs: 10_000 });
    expect(info.stdout).toMatch(/Joliet with UCS level \d found/);
    expect(info.stdout).toMatch(/Rock Ridge signatures version \d found/);
  });

  it('writes a FAT seed labelled CIDATA with the files, mode 0600', async () => {
    const out = join(dir, 'seed.img');
    await buildSeed(out, { ...FILES, 'vendor-data': '#cloud-config\n{}\n' }, { format: 'vfat' });
    expect(await mode(out)).toBe(0o600);
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    const listing = await run(['mdir', '-i', out, '::/'], { timeoutMs: 10_000, env });
    expect(listing.stdout).toMatch(/Volume in drive : is CIDATA/);
    for (const name of ['meta-data', 'user-data', 'network-config', 'vendor-data']) {
      const content = await run(['mtype', '-i', out, `::/${name}`], { timeoutMs: 10_000, env });
      const expected = name === 'vendor-data' ? '#cloud-config\n{}\n' : FILES[name as keyof SeedFiles];
      expect(content.stdout).toBe(expected);
    }
  });

  it('replaces an existing seed and rejects an unknown format', async () => {
    const out = join(dir, 'again.img');
    await buildSeed(out, FILES, { format: 'vfat' });
    await buildSeed(out, FILES, { format: 'vfat' });
    expect(await mode(out)).toBe(0o600);
    await expect(buildSeed(out, FILES, { format: 'udf' as 'iso' })).rejects.toMatchObject({ code: 'INVALID' });
  });
});
