import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { cloudInitModulesConfig } from './configure.ts';
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
