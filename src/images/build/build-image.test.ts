import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BUILDER_VERSION, buildImage, imageFileName, recipeKey, sha256File } from './build-image.ts';
import { RECIPES } from './recipes.ts';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'virtnode-build-image-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('recipeKey', () => {
  it('is stable and changes with size, packages and mirror', () => {
    const base = recipeKey('debian-12');
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(recipeKey('debian-12')).toBe(base);
    expect(recipeKey('debian-12', { sizeBytes: 4 * 1024 ** 3 })).toBe(base);
    expect(recipeKey('debian-12', { sizeBytes: 8 * 1024 ** 3 })).not.toBe(base);
    expect(recipeKey('debian-12', { extraPackages: ['curl'] })).not.toBe(base);
    expect(recipeKey('debian-12', { extraPackages: ['curl', 'less'] })).toBe(recipeKey('debian-12', { extraPackages: ['less', 'curl'] }));
    // A package the recipe already has changes nothing.
    expect(recipeKey('debian-12', { extraPackages: ['sudo'] })).toBe(base);
    expect(recipeKey('debian-12', { mirror: 'http://mirror.example/debian' })).not.toBe(base);
    expect(imageFileName('debian-12', base)).toBe(`debian-12-${base.slice(0, 16)}.qcow2`);
  });

  it('the recipe has what a cloud guest needs', () => {
    const pkgs = RECIPES['debian-12'].packages;
    for (const p of ['linux-image-amd64', 'kmod', 'cloud-init', 'openssh-server', 'tzdata', 'locales', 'ifupdown', 'qemu-guest-agent']) {
      expect(pkgs).toContain(p);
    }
    expect(RECIPES['debian-12'].kernelArgs.join(' ')).toMatch(/console=ttyS0/);
  });

  it('is lean without dropping what a seed needs: the config stage folded into final, in order; root disk drivers in the initramfs', () => {
    const r = RECIPES['debian-12'];
    // Every seed mode virtnode offers: NoCloud (cidata disk, HTTP seed) and ConfigDrive (--seed configdrive).
    expect(r.datasources).toEqual(expect.arrayContaining(['NoCloud', 'ConfigDrive']));
    expect(r.maskedUnits).toContain('cloud-config.service');
    expect(r.cloudInitModules.config).toEqual([]);
    const final = r.cloudInitModules.final;
    for (const m of ['locale', 'set-passwords', 'apt-configure', 'ntp', 'timezone', 'runcmd']) expect(final).toContain(m);
    expect(final.indexOf('apt-configure')).toBeLessThan(final.indexOf('package-update-upgrade-install'));
    expect(final.indexOf('runcmd')).toBeLessThan(final.indexOf('scripts-user'));
    for (const m of ['virtio_pci', 'virtio_blk', 'ext4']) expect(r.initramfsModules).toContain(m);
  });
});

describe('buildImage', () => {
  it('rejects bad input before doing anything', async () => {
    const outDir = join(dir, 'bad');
    const cacheDir = join(dir, 'cache');
    await expect(buildImage('debian-13', { outDir, cacheDir })).rejects.toMatchObject({ code: 'INVALID', field: 'name' });
    await expect(buildImage('debian-12', { outDir, cacheDir, sizeBytes: 512 * 1024 * 1024 })).rejects.toMatchObject({
      code: 'INVALID',
      field: 'sizeBytes',
    });
    await expect(buildImage('debian-12', { outDir, cacheDir, sizeBytes: 4 * 1024 ** 3 + 1 })).rejects.toMatchObject({ code: 'INVALID' });
    await expect(buildImage('debian-12', { outDir, cacheDir, extraPackages: ['curl; rm -rf /'] })).rejects.toMatchObject({
      code: 'INVALID',
      field: 'extraPackages',
    });
  });

  it('returns a cached image at once, without root', async () => {
    const outDir = join(dir, 'cached');
    const key = recipeKey('debian-12');
    const path = join(outDir, imageFileName('debian-12', key));
    await mkdir(outDir);
    await writeFile(path, 'not really qcow2');
    const sha256 = await sha256File(path);
    await writeFile(path.replace(/\.qcow2$/, '.json'), JSON.stringify({ recipeKey: key, sha256, sizeBytes: 4 * 1024 ** 3, builderVersion: BUILDER_VERSION }));
    const uid = vi.spyOn(process, 'getuid').mockReturnValue(1000);
    const phases: string[] = [];
    try {
      const image = await buildImage('debian-12', { outDir, cacheDir: join(dir, 'cache'), onProgress: (p) => phases.push(p) });
      expect(image).toEqual({ path, sha256, sizeBytes: 4 * 1024 ** 3, recipeKey: key, cached: true });
      expect(phases).toEqual(['cached']);
    } finally {
      uid.mockRestore();
    }
  });

  it('needs root to build: PERMISSION, and nothing left behind', async () => {
    const outDir = join(dir, 'noroot');
    const uid = vi.spyOn(process, 'getuid').mockReturnValue(1000);
    try {
      await expect(buildImage('debian-12', { outDir, cacheDir: join(dir, 'cache') })).rejects.toMatchObject({ code: 'PERMISSION' });
    } finally {
      uid.mockRestore();
    }
    await expect(readdir(outDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
