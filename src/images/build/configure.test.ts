import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { cloudInitModulesConfig, initramfsHook } from './configure.ts';
import { RECIPES } from './recipes.ts';

describe("the image's cloud-init module lists", () => {
  it('are lists for every stage, an empty one included (cloud-init warned "Invalid cloud-config" at each boot for a null)', () => {
    const recipe = RECIPES['debian-12'];
    expect(recipe.cloudInitModules.config).toEqual([]);
    const parsed = parse(cloudInitModulesConfig(recipe)) as Record<string, unknown>;
    expect(parsed).toEqual({
      cloud_init_modules: recipe.cloudInitModules.init,
      cloud_config_modules: [],
      cloud_final_modules: recipe.cloudInitModules.final,
    });
  });
});

describe("the image's initramfs drivers", () => {
  it('loads only the root disk path at boot and leaves the other disk and CD-ROM drivers to udev, in the initramfs', () => {
    const recipe = RECIPES['debian-12'];
    expect(recipe.initramfsBootModules).toEqual(['virtio_pci', 'virtio_blk', 'ext4']);
    const hook = initramfsHook(recipe);
    expect(hook.startsWith('#!/bin/sh\n')).toBe(true);
    expect(hook).toContain('prereqs) prereqs; exit 0');
    const added = [...hook.matchAll(/^manual_add_modules (\S+)$/gm)].map((m) => m[1]);
    expect(added.sort()).toEqual(['ahci', 'ata_piix', 'nvme', 'sd_mod', 'sr_mod', 'virtio_scsi']);
    for (const m of recipe.initramfsBootModules) expect(recipe.initramfsModules).toContain(m);
  });
});
