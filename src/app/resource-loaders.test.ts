import { describe, expect, it } from 'vitest';
import { API } from '../api/contracts/index.ts';
import { RESOURCES } from './index.ts';
import { RESOURCE_LOADERS } from './resource-loaders.ts';

describe('the resources loaded on first call (the CLI without a daemon)', () => {
  it('are the daemon\'s resources, one for each table of the API', async () => {
    expect(Object.keys(RESOURCE_LOADERS).sort()).toEqual(Object.keys(API).sort());
    for (const [key, load] of Object.entries(RESOURCE_LOADERS)) {
      expect(await load(), key).toBe(RESOURCES[key as keyof typeof RESOURCES]);
    }
  });
});
